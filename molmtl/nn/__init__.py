"""Neural-network building blocks: shared graph encoders (a registry) and per-task heads.

>>> encoder = get_encoder("mpnn", node_dim=11, edge_dim=5)
>>> heads = TaskHeads(encoder.out_dim, n_tasks=11)

The registry's functions need no torch; the modules (torch, torch_geometric) load when one of
their names is first used, so ``available_encoders()`` stays cheap for config validation.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from molmtl.nn._registry import available_encoders, encoder_options, get_encoder

if TYPE_CHECKING:
    from molmtl.nn._base import Encoder
    from molmtl.nn.gine import GINEEncoder
    from molmtl.nn.heads import TaskHeads
    from molmtl.nn.mpnn import MPNNEncoder

_LAZY = {
    "Encoder": "molmtl.nn._base",
    "GINEEncoder": "molmtl.nn.gine",
    "MPNNEncoder": "molmtl.nn.mpnn",
    "TaskHeads": "molmtl.nn.heads",
}

__all__ = [
    "Encoder",
    "GINEEncoder",
    "MPNNEncoder",
    "TaskHeads",
    "available_encoders",
    "encoder_options",
    "get_encoder",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'molmtl.nn' has no attribute {name!r}")
