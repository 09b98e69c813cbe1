"""Training: the config, the loop, evaluation and plots of a run directory.

>>> from molmtl.training import TrainConfig, train
>>> run_dir = train(TrainConfig.load(preset="qm9-quick", overrides={"out": "runs/quick"}))

Heavy imports (torch, the data layer) happen when these names are first used, so the CLI stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from molmtl.training.config import ConfigError, TrainConfig, available_presets
    from molmtl.training.evaluation import evaluate
    from molmtl.training.plots import plot
    from molmtl.training.trainer import train

_LAZY = {
    "ConfigError": "molmtl.training.config",
    "TrainConfig": "molmtl.training.config",
    "available_presets": "molmtl.training.config",
    "evaluate": "molmtl.training.evaluation",
    "plot": "molmtl.training.plots",
    "train": "molmtl.training.trainer",
}

__all__ = ["ConfigError", "TrainConfig", "available_presets", "evaluate", "plot", "train"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'molmtl.training' has no attribute {name!r}")
