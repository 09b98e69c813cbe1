"""Training: the config, the loop, evaluation and plots of a run directory.

>>> from molmtl.training import TrainConfig, train
>>> run_dir = train(TrainConfig.load(preset="qm9-quick", overrides={"out": "runs/quick"}))

``train`` is three steps, each usable alone (the benchmark scripts build on them)::

    run = prepare_run(config)          # run directory, data on the device, model, optimizer
    state = fit(run, start(run))       # epochs: selection, metrics.csv, checkpoints
    report = evaluate_selected_model(run, state)  # test_metrics.json

Heavy imports (torch, the data layer) happen when these names are first used, so the CLI stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from molmtl.training._data import load_dataset, make_split
    from molmtl.training._distributed import DataParallel, RankFailedError
    from molmtl.training._loop import (
        EpochMeans,
        compile_model,
        resolve_device,
        train_epoch,
        train_step,
    )
    from molmtl.training._setup import TrainingRun, TrainingWarning, prepare_run
    from molmtl.training.config import ConfigError, TrainConfig, available_presets
    from molmtl.training.evaluation import Scorer, evaluate
    from molmtl.training.plots import plot
    from molmtl.training.trainer import (
        MetricsLog,
        ModelSelection,
        RunState,
        evaluate_selected_model,
        fit,
        restore_checkpoint,
        start,
        train,
    )

_LAZY = {
    "ConfigError": "molmtl.training.config",
    "TrainConfig": "molmtl.training.config",
    "available_presets": "molmtl.training.config",
    "evaluate": "molmtl.training.evaluation",
    "Scorer": "molmtl.training.evaluation",
    "plot": "molmtl.training.plots",
    "load_dataset": "molmtl.training._data",
    "make_split": "molmtl.training._data",
    "DataParallel": "molmtl.training._distributed",
    "RankFailedError": "molmtl.training._distributed",
    "EpochMeans": "molmtl.training._loop",
    "compile_model": "molmtl.training._loop",
    "train_epoch": "molmtl.training._loop",
    "train_step": "molmtl.training._loop",
    "TrainingRun": "molmtl.training._setup",
    "TrainingWarning": "molmtl.training._setup",
    "prepare_run": "molmtl.training._setup",
    "resolve_device": "molmtl.training._loop",
    **{
        name: "molmtl.training.trainer"
        for name in (
            "MetricsLog",
            "ModelSelection",
            "RunState",
            "evaluate_selected_model",
            "fit",
            "restore_checkpoint",
            "start",
            "train",
        )
    },
}

__all__ = [
    "ConfigError",
    "DataParallel",
    "EpochMeans",
    "MetricsLog",
    "ModelSelection",
    "RankFailedError",
    "RunState",
    "Scorer",
    "TrainConfig",
    "TrainingRun",
    "TrainingWarning",
    "available_presets",
    "compile_model",
    "evaluate",
    "evaluate_selected_model",
    "fit",
    "load_dataset",
    "make_split",
    "plot",
    "prepare_run",
    "resolve_device",
    "restore_checkpoint",
    "start",
    "train",
    "train_epoch",
    "train_step",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'molmtl.training' has no attribute {name!r}")
