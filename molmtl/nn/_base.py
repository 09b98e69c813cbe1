"""The encoder interface, shared by every encoder module.

An encoder turns a :class:`~molmtl.graphs.GraphBatch` into one vector per molecule; the heads of
:mod:`molmtl.nn.heads` turn that vector into one prediction per task. New encoders subclass
:class:`Encoder` and add one line to the registry in :mod:`molmtl.nn._registry`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

if TYPE_CHECKING:
    from molmtl.graphs import GraphBatch


class Encoder(nn.Module):
    """Base class of the shared encoders: ``forward(batch) -> [num_graphs, out_dim]``.

    Subclasses take ``node_dim`` and ``edge_dim`` (the featurizer's dimensions) as their first
    keyword arguments and set ``out_dim``. They must not synchronize with the host: pooling gets
    its output size from ``batch.num_graphs``, a Python int.
    """

    out_dim: int

    def forward(self, batch: GraphBatch) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def check_positive_int(name: str, value: object) -> None:
    """Raise a ValueError naming option ``name`` unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"encoder option {name} must be an int >= 1, got {value!r}")
