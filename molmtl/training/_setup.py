"""Preparing a training run: the run directory, the data on the device, the model and its optimizer.

:func:`prepare_run` returns a :class:`TrainingRun` that holds everything the fit loop, the
evaluation and the benchmark scripts need, built in a fixed order so a seed gives the same run.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from molmtl import balancing, featurizers
from molmtl.data import QM9_DEFAULT_TASKS, Split, TargetScaler, fit_domain
from molmtl.models import build_model, check_model_config
from molmtl.rundir import RunDir, RunDirError
from molmtl.training._data import (
    check_dataset,
    check_same_data,
    check_split,
    load_dataset,
    make_split,
    read_split,
    target_records,
)
from molmtl.training._distributed import DataParallel, join, rank_device
from molmtl.training._loop import compile_model, resolve_device
from molmtl.training.config import ConfigError, TrainConfig
from molmtl.training.evaluation import Scorer

if TYPE_CHECKING:
    from molmtl.balancing import Balancer
    from molmtl.data import MoleculeDataset
    from molmtl.graphs import GraphBatch, PackedGraphs
    from molmtl.models import MultiTaskModel


@dataclass
class SplitIndex:
    """``[N]`` CPU long tensors of the molecules of each split (indices into the dataset)."""

    train: Tensor
    val: Tensor
    test: Tensor

    @classmethod
    def of(cls, split: Split) -> SplitIndex:
        return cls(
            *(torch.as_tensor(p, dtype=torch.long) for p in (split.train, split.val, split.test))
        )


@dataclass
class TrainingRun:
    """A prepared run: data on the device, the model, its optimization and its bookkeeping."""

    config: TrainConfig
    run_dir: RunDir
    device: torch.device
    graphs: PackedGraphs  # the dataset's graphs, on the device
    targets: Tensor  # [G, T] physical units on the device, NaN = missing
    standardized: Tensor  # [G, T] (targets - train mean) / train std, on the device
    split: SplitIndex
    model: MultiTaskModel
    forward: Callable[[GraphBatch], Tensor]  # the model, compiled if asked
    autocast: AbstractContextManager
    balancer: Balancer
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    shuffle_generator: torch.Generator
    scorer: Scorer
    metadata: dict[str, Any]  # what config.json records besides the model
    data_parallel: DataParallel | None = None  # the ranks; None when training alone

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run directory (rank 0, or the only process)."""
        return self.data_parallel is None or self.data_parallel.is_main

    def predict(self, batch: GraphBatch) -> Tensor:
        """``[B, T]`` physical-unit predictions of the current weights."""
        with self.autocast:
            return self.forward(batch).float() * self.model.target_std + self.model.target_mean


class TrainingWarning(UserWarning):
    """Something a run went on despite (e.g. source rows left out), said once on stderr."""


def check_run_dir(config: TrainConfig, *, resume: bool, overwrite: bool) -> RunDir:
    """The run directory ``config.out``, refused (writing nothing) when it is a file, holds a
    run that neither ``resume`` nor ``overwrite`` allows touching, or holds files that are
    not a molmtl run's for ``overwrite`` to remove."""
    if resume and overwrite:
        raise ConfigError("resume and overwrite exclude each other: continue the run or replace it")
    run_dir = RunDir(config.out)
    _check_writable(run_dir.path)
    if resume:
        check_resumable(run_dir, config)
        return run_dir
    found = run_dir.molmtl_files()
    if found and not overwrite:
        raise ConfigError(
            f"out: {run_dir.path} already holds a run; pass resume=True (--resume) to "
            "continue it, overwrite=True (--overwrite) to replace it, or choose another out "
            "directory"
        )
    if found and not run_dir.is_run():
        names = [path.name for path in found]
        raise ConfigError(
            f"out: {run_dir.path} holds {names} but no run that molmtl wrote (no molmtl "
            "config.json or splits.json), so --overwrite will not delete them; move them away "
            "or choose another out directory"
        )
    return run_dir


def _check_writable(out: Path) -> None:
    """Refuse an ``out`` that is a file, lies under a file, or lies in a read-only folder."""
    if "\0" in str(out):
        raise ConfigError(f"out: {str(out)!r} holds a null character")
    existing = next(path for path in (out, *out.parents) if path.exists())
    if not existing.is_dir():
        raise ConfigError(f"out: {existing} is a file, not a directory; choose another out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"out: {existing} is not writable; choose another out")


def check_resumable(run_dir: RunDir, config: TrainConfig) -> None:
    """Refuse to resume with settings that would change the run's trajectory."""
    if not run_dir.has_checkpoint():
        raise ConfigError(
            f"out: cannot resume, {run_dir.checkpoint_path} does not exist (no run was started "
            "there, or it was cut short before it began; train it afresh with --overwrite)"
        )
    try:
        changed = run_dir.changed_settings(config.to_dict())
    except RunDirError as error:
        raise ConfigError(f"cannot resume: {error}") from error
    if changed:
        raise ConfigError(
            f"cannot resume {run_dir.path} with different settings for {changed} "
            f"(only {list(run_dir.resumable_changes)} may change)"
        )


def check_options(config: TrainConfig) -> None:
    """Refuse a featurizer, model or balancer option that would fail only once the data is in.

    The model is checked on PyTorch's ``meta`` device (sizes against their bounds, nothing
    allocated) and the balancer is built on a stand-in parameter.
    """
    n_tasks = len(config.targets or QM9_DEFAULT_TASKS)
    try:
        featurizer = featurizers.get(config.featurizer)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"featurizer: {error}") from error
    try:
        check_model_config(
            config.model,
            node_dim=featurizer.node_dim,
            edge_dim=featurizer.edge_dim,
            n_tasks=n_tasks,
        )
    except (ValueError, TypeError) as error:
        raise ConfigError(f"model: {error}") from error
    stand_in = torch.nn.Parameter(torch.zeros(1))
    try:
        balancing.get(
            config.balancer, shared=[stand_in], n_tasks=n_tasks, **config.balancer_options
        )
    except (ValueError, TypeError) as error:
        raise ConfigError(f"balancer_options: {error}") from error


def _load_or_make_split(
    run_dir: RunDir, config: TrainConfig, dataset: MoleculeDataset, *, resume: bool
) -> Split:
    """The resumed run's ``splits.json`` (checked against the data), or a new split.

    A new split is checked before anything is written; then, with ``overwrite``, every file
    of the old run is removed, and ``splits.json`` and ``invalid_rows.csv`` are written.
    """
    if resume:
        check_same_data(run_dir, dataset, "cannot resume")
        return read_split(run_dir, len(dataset))
    split = make_split(config, dataset)
    check_split(config, dataset, split)
    _start_run_dir(run_dir)
    run_dir.write_splits(split.to_dict())
    _record_invalid_rows(run_dir, dataset)
    return split


def _start_run_dir(run_dir: RunDir) -> None:
    """Create the run directory, first removing every file of a run it holds (an overwrite)."""
    kept = run_dir.clear()
    if kept:
        names = [path.name for path in kept]
        warnings.warn(
            f"{run_dir.path} also holds {names}, which molmtl did not write: left as they are",
            TrainingWarning,
            stacklevel=2,
        )
    run_dir.path.mkdir(parents=True, exist_ok=True)


def _record_invalid_rows(run_dir: RunDir, dataset: MoleculeDataset) -> None:
    """List the source rows left out in ``invalid_rows.csv``, and say how many."""
    rejected = dataset.rejected
    if not len(rejected):
        return
    run_dir.write_invalid_rows(rejected.rename(columns={"error": "reason"}).to_dict("records"))
    warnings.warn(
        f"{len(rejected)} of {len(rejected) + len(dataset)} data rows have invalid SMILES and are "
        f"left out; they are listed in {run_dir.invalid_rows_path}",
        TrainingWarning,
        stacklevel=2,
    )


def _build_model(
    config: TrainConfig, dataset: MoleculeDataset, mean: Tensor, std: Tensor
) -> MultiTaskModel:
    """The run's model, initialised from the run's seed, with the training-split scaling."""
    torch.manual_seed(config.seed)
    model = build_model(
        config.model,
        node_dim=dataset.graphs.node_dim,
        edge_dim=dataset.graphs.edge_dim,
        n_tasks=len(mean),
    )
    model.set_target_scaling(mean, std)
    return model


def _build_optimization(
    config: TrainConfig, model: MultiTaskModel, data_parallel: DataParallel | None
) -> tuple[Any, Any, Any]:
    """The balancer, the Adam optimizer and the plateau scheduler of ``model``."""
    options = dict(config.balancer_options)
    if data_parallel is not None and balancing.is_gradient_method(config.balancer):
        # per-task gradients are reduced over the ranks before the aggregator sees them
        options.update(distributed=True, process_group=data_parallel.group)
    balancer = balancing.get(
        config.balancer,
        shared=model.shared_parameters(),
        task_specific=model.task_parameters(),
        n_tasks=len(model.target_mean),
        **options,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=config.lr_factor,
        patience=config.lr_patience,
        min_lr=config.min_lr,
    )
    return balancer, optimizer, scheduler


def _prepare_data(
    config: TrainConfig, data_parallel: DataParallel | None, *, resume: bool, overwrite: bool
) -> tuple[RunDir, MoleculeDataset, Split]:
    """The run directory, the dataset and its split; with several ranks, rank 0 first.

    Rank 0 alone creates the run directory, featurizes into the cache and writes
    ``splits.json``; the other ranks then read the cache and the split.
    """

    def on_main() -> tuple[RunDir, MoleculeDataset, Split]:
        run_dir = check_run_dir(config, resume=resume, overwrite=overwrite)
        check_options(config)
        dataset = load_dataset(config)
        check_dataset(config, dataset)
        return run_dir, dataset, _load_or_make_split(run_dir, config, dataset, resume=resume)

    def on_others() -> tuple[RunDir, MoleculeDataset, Split]:
        run_dir = RunDir(config.out)
        return run_dir, load_dataset(config), Split.from_dict(run_dir.read_splits())

    if data_parallel is None:
        return on_main()
    return data_parallel.main_first(on_main, on_others)


def prepare_run(
    config: TrainConfig, *, resume: bool = False, overwrite: bool = False
) -> TrainingRun:
    """Everything a run needs, from the config: see :func:`molmtl.training.train` for the flags.

    Launched by torchrun with ``WORLD_SIZE`` > 1 (or with an initialised process group), the
    run is data-parallel: ``run.data_parallel`` holds the ranks, each on its own device.
    """
    device = resolve_device(config.device)
    data_parallel = join(rank_device(device))
    if data_parallel is None:
        return _prepare(config, device, None, resume=resume, overwrite=overwrite)
    with data_parallel.stop_together():
        return _prepare(
            config, rank_device(device), data_parallel, resume=resume, overwrite=overwrite
        )


def _prepare(
    config: TrainConfig,
    device: torch.device,
    data_parallel: DataParallel | None,
    *,
    resume: bool,
    overwrite: bool,
) -> TrainingRun:
    """:func:`prepare_run` on ``device``, once the ranks are known."""
    run_dir, dataset, split = _prepare_data(
        config, data_parallel, resume=resume, overwrite=overwrite
    )
    split = SplitIndex.of(split)
    targets = torch.as_tensor(dataset.y, dtype=torch.float32)
    # statistics from the training split only
    scaler = TargetScaler().fit(targets[split.train].numpy())
    mean = torch.as_tensor(scaler.mean_, dtype=torch.float32)
    std = torch.as_tensor(scaler.std_, dtype=torch.float32)
    model = _build_model(config, dataset, mean, std).to(device)
    balancer, optimizer, scheduler = _build_optimization(config, model, data_parallel)
    metadata = _metadata(config, dataset, split)
    return TrainingRun(
        config=config,
        run_dir=run_dir,
        device=device,
        graphs=dataset.graphs.to(device),
        targets=targets.to(device),
        standardized=((targets - mean) / std).to(device),  # NaN stays NaN
        split=split,
        model=model,
        forward=compile_model(model) if config.compile else model,
        autocast=torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if config.precision == "bf16"
        else nullcontext(),
        balancer=balancer,
        optimizer=optimizer,
        scheduler=scheduler,
        shuffle_generator=torch.Generator().manual_seed(config.seed),
        scorer=Scorer(metadata["targets"], std, config.reference_maes),
        metadata=metadata,
        data_parallel=data_parallel,
    )


def _metadata(config: TrainConfig, dataset: MoleculeDataset, split: SplitIndex) -> dict[str, Any]:
    """What ``config.json`` records besides the model."""
    return {
        "featurizer": dataset.featurizer_spec,
        "targets": target_records(dataset),
        # what the training molecules look like, for the predictor's in_domain / domain_note
        "domain": fit_domain(dataset, split.train).to_dict(),
        "train": config.to_dict(),
        # what resume and evaluate check the data against
        "data": {"sha256": dataset.fingerprint(), "n_molecules": len(dataset)},
    }
