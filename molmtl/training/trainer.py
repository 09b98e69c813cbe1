"""The training loop: device-side batching, balancer-driven backward, no host sync per step.

Per epoch the loop reads the device exactly once, after validation, to log metrics, step the
scheduler and select the model. Everything else (batch assembly, losses, balancer diagnostics,
their running sums) stays on the device.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from molmtl import _device
from molmtl.training._data import load_dataset, make_split, target_records
from molmtl.training.checkpoint import (
    CHECKPOINT_FILE,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from molmtl.training.config import ConfigError, TrainConfig
from molmtl.training.evaluation import (
    SPLITS_FILE,
    TEST_METRICS_FILE,
    Scorer,
    mean_absolute_errors,
)
from molmtl.training.metrics import masked_mse, shared_gradient_norms

if TYPE_CHECKING:
    from molmtl.balancing import Balancer
    from molmtl.data import GraphBatch, MoleculeDataset, PackedGraphs, Split

METRICS_FILE = "metrics.csv"
#: config fields that may differ between a run and its resumption (they do not change the result)
RESUMABLE_CHANGES = ("epochs", "progress", "out", "device", "data", "cache_dir")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else as ``torch.device``."""
    try:
        return _device.resolve_device(name)
    except ValueError as error:
        raise ConfigError(f"device: {error}") from error


@dataclass
class _EpochSums:
    """Running sums of one epoch, on the device. ``[T]`` each."""

    loss: Tensor
    labelled_steps: Tensor
    weights: Tensor
    grad_norms: Tensor
    steps: int = 0

    @classmethod
    def zeros(cls, n_tasks: int, device: torch.device) -> _EpochSums:
        return cls(*(torch.zeros(n_tasks, device=device) for _ in range(4)))

    def add(self, losses: Tensor, mask: Tensor, diagnostics: dict[str, Tensor]) -> None:
        self.loss += losses.detach() * mask
        self.labelled_steps += mask
        self.weights += diagnostics["weights"].detach().float()
        self.grad_norms += diagnostics["grad_norms"].detach().float()
        self.steps += 1

    def means(self) -> Tensor:
        """``[4, T]``: train loss, weight and shared-gradient norm per task, and labelled steps."""
        steps = max(self.steps, 1)
        return torch.stack(
            [
                self.loss / self.labelled_steps,
                self.weights / steps,
                self.grad_norms / steps,
                self.labelled_steps,
            ]
        )


@dataclass
class _RunState:
    """What model selection remembers across epochs (saved in the checkpoint)."""

    epoch: int = 0
    best_score: float = float("inf")
    best_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> Path:
    """Train a multi-task model as ``config`` says and return its run directory.

    The run directory (``config.out``) receives ``config.json`` and ``model.pt`` (the best model
    on the validation score), ``splits.json``, ``metrics.csv`` (one row per epoch),
    ``checkpoint.pt`` (after every epoch) and ``test_metrics.json``.

    Args:
        config: the run's settings.
        resume: continue from ``checkpoint.pt`` in ``config.out``. The result equals an
            uninterrupted run bit-for-bit on CPU. ``epochs`` may be raised to train longer.
        overwrite: start afresh even if ``config.out`` already holds a run (its files are
            replaced). Without it, an existing run is refused rather than silently clobbered.
    """
    from molmtl import balancing
    from molmtl.data import TargetScaler
    from molmtl.models import build_model, save_model

    run_dir = _prepare_run_dir(config, resume=resume, overwrite=overwrite)
    device = resolve_device(config.device)
    dataset = load_dataset(config)
    split = _load_or_make_split(run_dir, config, dataset, resume=resume)
    train_index, val_index, test_index = (
        torch.as_tensor(part, dtype=torch.long) for part in (split.train, split.val, split.test)
    )
    # [G, T] physical units, NaN = missing; statistics from the training split only
    targets = torch.as_tensor(dataset.y, dtype=torch.float32)
    scaler = TargetScaler().fit(targets[train_index].numpy())
    mean = torch.as_tensor(scaler.mean_, dtype=torch.float32)
    std = torch.as_tensor(scaler.std_, dtype=torch.float32)
    n_tasks = targets.shape[1]

    torch.manual_seed(config.seed)
    model = build_model(
        config.model,
        node_dim=dataset.graphs.node_dim,
        edge_dim=dataset.graphs.edge_dim,
        n_tasks=n_tasks,
    )
    model.set_target_scaling(mean, std)
    model.to(device)
    balancer = balancing.get(
        config.balancer,
        shared=model.shared_parameters(),
        task_specific=model.task_parameters(),
        n_tasks=n_tasks,
        **config.balancer_options,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=config.lr_factor,
        patience=config.lr_patience,
        min_lr=config.min_lr,
    )
    shuffle_generator = torch.Generator().manual_seed(config.seed)
    metadata = {
        "featurizer": dataset.featurizer_spec,
        "targets": target_records(dataset),
        "train": config.to_dict(),
    }
    scorer = Scorer(metadata["targets"], std, config.reference_maes)
    target_names = scorer.target_names

    def checkpoint_state() -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "balancer": balancer.state_dict(),
            "rng": rng_state(shuffle_generator),
            "run": vars(state),
        }

    state = _RunState()
    if resume:
        checkpoint = load_checkpoint(run_dir)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        balancer.load_state_dict(checkpoint["balancer"])
        set_rng_state(checkpoint["rng"], shuffle_generator)
        state = _RunState(**checkpoint["run"])
    else:
        save_model(run_dir, model, {**metadata, "best_epoch": 0})

    graphs = dataset.graphs.to(device)
    device_targets = targets.to(device)
    standardized = ((targets - mean) / std).to(device)  # NaN stays NaN
    forward = compile_model(model) if config.compile else model
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if config.precision == "bf16"
        else nullcontext()
    )

    def predict(batch: GraphBatch) -> Tensor:
        with autocast:
            return forward(batch).float() * model.target_std + model.target_mean

    _write_metrics(run_dir, state.history, target_names, probe=bool(config.gradient_probe))
    progress = tqdm(
        range(state.epoch, config.epochs),
        initial=state.epoch,
        total=config.epochs,
        desc="epoch",
        disable=not (config.progress if config.progress is not None else sys.stderr.isatty()),
        dynamic_ncols=True,
    )
    for epoch in progress:
        started = time.perf_counter()
        model.train()
        sums = train_epoch(
            forward,
            balancer,
            optimizer,
            graphs,
            standardized,
            train_index[torch.randperm(len(train_index), generator=shuffle_generator)],
            batch_size=config.batch_size,
            autocast=autocast,
        )
        model.eval()
        val_mae = mean_absolute_errors(
            predict, graphs, device_targets, val_index, batch_size=config.eval_batch_size
        )
        # the epoch's one read from the device
        epoch_means, val_mae = torch.cat([sums.means(), val_mae[None]]).cpu().split([4, 1])
        seconds = time.perf_counter() - started
        probe_norms = (
            probe_gradient_norms(model, graphs, standardized, train_index[: config.gradient_probe])
            if config.gradient_probe
            else None
        )
        val_score = scorer.score(val_mae[0])
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step(val_score)
        state.epoch = epoch + 1
        if val_score < state.best_score:
            state.best_score, state.best_epoch = val_score, epoch + 1
            save_model(
                run_dir, model, {**metadata, "best_epoch": state.best_epoch, "val_score": val_score}
            )
        balancer.end_epoch()
        state.history.append(
            _metrics_row(
                epoch + 1,
                lr,
                val_score,
                seconds,
                epoch_means,
                scorer.reported(val_mae[0]),
                target_names,
                probe_norms,
            )
        )
        _write_metrics(run_dir, state.history, target_names, probe=bool(config.gradient_probe))
        save_checkpoint(run_dir, checkpoint_state())
        progress.set_postfix(
            loss=f"{float(epoch_means[0].nanmean()):.4f}",
            val=f"{val_score:.4g}",
            best=state.best_epoch,
        )
    progress.close()

    _write_test_metrics(
        run_dir, model, predict, graphs, device_targets, test_index, scorer, state, config
    )
    return run_dir


def compile_model(model: torch.nn.Module) -> Callable[[GraphBatch], Tensor]:
    """``torch.compile`` with dynamic shapes (batches differ in size)."""
    import torch._functorch.config

    # gradient balancers differentiate the losses several times (retain_graph=True), which
    # compiled backward graphs with donated buffers refuse
    torch._functorch.config.donated_buffer = False
    return torch.compile(model, dynamic=True)


def _prepare_run_dir(config: TrainConfig, *, resume: bool, overwrite: bool) -> Path:
    """Create ``config.out``, refusing to clobber a run unless asked, or check a resumable one."""
    if resume and overwrite:
        raise ConfigError("resume and overwrite exclude each other: continue the run or replace it")
    run_dir = Path(config.out)
    if resume:
        _check_resumable(run_dir, config)
    elif (run_dir / CHECKPOINT_FILE).exists():
        if not overwrite:
            raise ConfigError(
                f"out: {run_dir} already holds a run; pass resume=True (--resume) to continue it, "
                "overwrite=True (--overwrite) to replace it, or choose another out directory"
            )
        # removed first, so a replacement killed in its first epoch cannot resume the old run
        (run_dir / CHECKPOINT_FILE).unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _load_or_make_split(
    run_dir: Path, config: TrainConfig, dataset: MoleculeDataset, *, resume: bool
) -> Split:
    """The resumed run's ``splits.json``, or a new split written there."""
    from molmtl.data import Split

    path = run_dir / SPLITS_FILE
    if resume:
        return Split.from_dict(json.loads(path.read_text()))
    split = make_split(config, dataset)
    path.write_text(json.dumps(split.to_dict()) + "\n")
    return split


def train_epoch(
    forward: Callable[[GraphBatch], Tensor],
    balancer: Balancer,
    optimizer: torch.optim.Optimizer,
    graphs: PackedGraphs,
    targets: Tensor,
    order: Tensor,
    *,
    batch_size: int,
    autocast: AbstractContextManager | None = None,
) -> _EpochSums:
    """One pass over the molecules ``order`` in mini-batches built on the device.

    Args:
        graphs: the dataset's graphs, already on the device.
        targets: ``[G, T]`` standardized labels on the device (NaN = missing).
        order: ``[N]`` CPU long tensor, the (shuffled) training molecules.

    Returns:
        The epoch's running sums, still on the device.
    """
    sums = _EpochSums.zeros(targets.shape[1], targets.device)
    for device_batch, batch in graphs.batches(order, batch_size):
        losses, mask, diagnostics = train_step(
            forward, balancer, optimizer, batch, targets[device_batch], autocast
        )
        sums.add(losses, mask, diagnostics)
    return sums


def train_step(
    forward: Callable[[GraphBatch], Tensor],
    balancer: Balancer,
    optimizer: torch.optim.Optimizer,
    batch: GraphBatch,
    targets: Tensor,
    autocast: AbstractContextManager | None = None,
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """One optimization step; nothing is read back to the host.

    Args:
        forward: the model (possibly compiled): batch → ``[B, T]`` standardized predictions.
        balancer: turns the per-task losses into gradients.
        targets: ``[B, T]`` standardized labels, NaN = missing.
        autocast: e.g. a bf16 ``torch.autocast`` context for the forward pass, or None.

    Returns:
        ``losses [T]`` (detached), ``mask [T]`` (tasks labelled in the batch) and the
        balancer's diagnostics.
    """
    optimizer.zero_grad(set_to_none=True)
    with autocast or nullcontext():
        prediction = forward(batch)
    losses, mask = masked_mse(prediction.float(), targets)
    diagnostics = balancer.backward(losses, mask)
    optimizer.step()
    return losses.detach(), mask, diagnostics


def probe_gradient_norms(
    model: torch.nn.Module, graphs: PackedGraphs, targets: Tensor, index: Tensor
) -> Tensor:
    """``[T]`` shared-gradient norm of each task's standardized MSE on the molecules ``index``.

    In eval mode and with ``torch.autograd.grad``, so no parameter, ``.grad`` or random state
    of the run changes.
    """
    was_training = model.training
    model.eval()
    device_index, batch = next(graphs.batches(index, len(index)))
    losses, _ = masked_mse(model(batch).float(), targets[device_index])
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    norms = shared_gradient_norms(losses, shared).detach().cpu()
    model.train(was_training)
    return norms


def _write_test_metrics(
    run_dir, model, predict, graphs, targets, test_index, scorer, state, config
) -> None:
    """Evaluate the selected (best-validation) weights on the test split."""
    best = torch.load(run_dir / "model.pt", map_location=targets.device, weights_only=True)
    model.load_state_dict(best)
    model.eval()
    mae = mean_absolute_errors(
        predict, graphs, targets, test_index, batch_size=config.eval_batch_size
    ).cpu()
    report = {
        "split": "test",
        "n_molecules": len(test_index),
        "best_epoch": state.best_epoch,
        **scorer.report(mae),
    }
    (run_dir / TEST_METRICS_FILE).write_text(json.dumps(report, indent=2) + "\n")


def _metrics_row(
    epoch: int,
    lr: float,
    val_score: float,
    seconds: float,
    epoch_means: Tensor,
    val_mae: Tensor,
    names: list[str],
    probe_norms: Tensor | None = None,
) -> dict[str, Any]:
    loss, weights, grad_norms, _ = epoch_means.tolist()
    row: dict[str, Any] = {
        "epoch": epoch,
        "lr": lr,
        "train_loss": float(epoch_means[0].nanmean()),
        "val_score": val_score,
        "seconds": round(seconds, 3),
    }
    for key, values in (
        ("train_loss", loss),
        ("val_mae", val_mae.tolist()),
        ("grad_norm", grad_norms),
        ("weight", weights),
    ):
        row.update({f"{key}/{name}": value for name, value in zip(names, values, strict=True)})
    if probe_norms is not None:
        row.update(
            {f"probe_grad_norm/{n}": v for n, v in zip(names, probe_norms.tolist(), strict=True)}
        )
    return row


def _write_metrics(
    run_dir: Path, history: list[dict[str, Any]], names: list[str], *, probe: bool
) -> None:
    """Rewrite ``metrics.csv`` from the history (on resume it then holds exactly the kept epochs)."""
    keys = (
        "train_loss",
        "val_mae",
        "grad_norm",
        "weight",
        *(("probe_grad_norm",) if probe else ()),
    )
    columns = ["epoch", "lr", "train_loss", "val_score", "seconds"] + [
        f"{key}/{name}" for key in keys for name in names
    ]
    path = run_dir / METRICS_FILE
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)
    temporary.replace(path)


def _check_resumable(run_dir: Path, config: TrainConfig) -> None:
    """Refuse to resume with settings that would change the run's trajectory."""
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise ConfigError(f"out: cannot resume, {config_path} does not exist")
    stored = json.loads(config_path.read_text()).get("train", {})
    current = config.to_dict()
    changed = sorted(
        k for k in current if k not in RESUMABLE_CHANGES and stored.get(k) != current[k]
    )
    if changed:
        raise ConfigError(
            f"cannot resume {run_dir} with different settings for {changed} "
            f"(only {list(RESUMABLE_CHANGES)} may change)"
        )
