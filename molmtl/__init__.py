"""molmtl: molecular multi-property prediction with a multi-task balancing engine.

Heavy modules (torch, rdkit) load on first use, so ``import molmtl`` and ``molmtl --help`` stay fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from molmtl._version import __version__

if TYPE_CHECKING:
    from molmtl._threads import configure_threads
    from molmtl.predict import Predictor
    from molmtl.training import train

_LAZY = {
    "Predictor": "molmtl.predict",
    "configure_threads": "molmtl._threads",
    "train": "molmtl.training",
}

__all__ = ["Predictor", "__version__", "configure_threads", "train"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'molmtl' has no attribute {name!r}")
