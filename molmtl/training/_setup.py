"""Preparing a training run: the run directory, the data on the device, the model and its optimizer.

:func:`prepare_run` returns a :class:`TrainingRun` that holds everything the fit loop, the
evaluation and the benchmark scripts need, built in a fixed order so a seed gives the same run.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from molmtl import _device, balancing
from molmtl.data import Split, TargetScaler, fit_domain
from molmtl.models import build_model
from molmtl.rundir import RunDir
from molmtl.training._data import load_dataset, make_split, target_records
from molmtl.training._distributed import DataParallel, join, rank_device
from molmtl.training._loop import compile_model
from molmtl.training.config import ConfigError, TrainConfig
from molmtl.training.evaluation import Scorer

if TYPE_CHECKING:
    from molmtl.balancing import Balancer
    from molmtl.data import MoleculeDataset
    from molmtl.graphs import GraphBatch, PackedGraphs
    from molmtl.models import MultiTaskModel


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else as ``torch.device``."""
    try:
        return _device.resolve_device(name)
    except ValueError as error:
        raise ConfigError(f"device: {error}") from error


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


def prepare_run_dir(config: TrainConfig, *, resume: bool, overwrite: bool) -> RunDir:
    """Create ``config.out``, refusing to clobber a run unless asked, or check a resumable one."""
    if resume and overwrite:
        raise ConfigError("resume and overwrite exclude each other: continue the run or replace it")
    run_dir = RunDir(config.out)
    if resume:
        check_resumable(run_dir, config)
    elif run_dir.has_checkpoint():
        if not overwrite:
            raise ConfigError(
                f"out: {run_dir.path} already holds a run; pass resume=True (--resume) to "
                "continue it, overwrite=True (--overwrite) to replace it, or choose another out "
                "directory"
            )
        # removed first, so a replacement killed in its first epoch cannot resume the old run
        run_dir.checkpoint_path.unlink()
    run_dir.path.mkdir(parents=True, exist_ok=True)
    return run_dir


def check_resumable(run_dir: RunDir, config: TrainConfig) -> None:
    """Refuse to resume with settings that would change the run's trajectory."""
    if not run_dir.config_path.is_file():
        raise ConfigError(f"out: cannot resume, {run_dir.config_path} does not exist")
    changed = run_dir.changed_settings(config.to_dict())
    if changed:
        raise ConfigError(
            f"cannot resume {run_dir.path} with different settings for {changed} "
            f"(only {list(run_dir.resumable_changes)} may change)"
        )


def _load_or_make_split(
    run_dir: RunDir, config: TrainConfig, dataset: MoleculeDataset, *, resume: bool
) -> Split:
    """The resumed run's ``splits.json``, or a new split written there."""
    if resume:
        return Split.from_dict(run_dir.read_splits())
    split = make_split(config, dataset)
    run_dir.write_splits(split.to_dict())
    return split


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
        run_dir = prepare_run_dir(config, resume=resume, overwrite=overwrite)
        dataset = load_dataset(config)
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
    metadata = {
        "featurizer": dataset.featurizer_spec,
        "targets": target_records(dataset),
        # what the training molecules look like, for the predictor's in_domain / domain_note
        "domain": fit_domain(dataset, split.train).to_dict(),
        "train": config.to_dict(),
    }
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
