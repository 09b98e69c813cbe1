"""``train(config)``: prepare a run, fit it epoch by epoch, test the selected weights.

Per epoch the loop reads the device exactly once, after validation, to log metrics, step the
scheduler and select the model. Everything else (batch assembly, losses, balancer diagnostics,
their running sums) stays on the device. The parts of an epoch's bookkeeping are small objects
(:class:`ModelSelection`, :class:`MetricsLog`, :func:`checkpoint_state`) that can be tested and
reused alone.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from molmtl.models import save_model
from molmtl.rundir import RunDir, RunDirError
from molmtl.training._loop import EpochMeans, train_epoch
from molmtl.training._setup import TrainingRun, prepare_run
from molmtl.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from molmtl.training.config import TrainConfig
from molmtl.training.evaluation import mean_absolute_errors
from molmtl.training.metrics import masked_mse, shared_gradient_norms


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

    Under ``torchrun --nproc-per-node N`` the N ranks train together (``batch_size`` is the
    global batch; rank 0 writes the run directory); see docs/training.md.
    """
    run = prepare_run(config, resume=resume, overwrite=overwrite)
    if run.data_parallel is None:
        _train_prepared(run, resume=resume)
        return run.run_dir.path
    with run.data_parallel.stop_together():
        _train_prepared(run, resume=resume)
        run.data_parallel.barrier()  # no rank tears the group down while another still reduces
    run.data_parallel.close()
    return run.run_dir.path


def _train_prepared(run: TrainingRun, *, resume: bool) -> None:
    state = restore_checkpoint(run) if resume else start(run)
    fit(run, state)
    evaluate_selected_model(run, state)


@dataclass
class RunState:
    """What model selection remembers across epochs (saved in the checkpoint)."""

    epoch: int = 0
    best_score: float = float("inf")
    best_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class EpochRecord:
    """One epoch's results, on the host."""

    epoch: int
    lr: float  # the learning rate the epoch trained with
    val_score: float
    seconds: float  # training and validation, excluding the gradient probe
    means: EpochMeans
    val_mae: Tensor  # [T] reported units
    probe_grad_norm: Tensor | None  # [T], or None when the probe is off


class ModelSelection:
    """Keeps the weights of the best validation score so far as the run's ``model.pt``."""

    def __init__(self, run: TrainingRun) -> None:
        self.run = run

    def save(self, state: RunState) -> None:
        """Write ``model.pt`` and ``config.json`` (raises :class:`RunDirError` if that fails)."""
        if not self.run.is_main:
            return
        extra = {"best_epoch": state.best_epoch}
        if state.best_epoch:
            extra["val_score"] = state.best_score
        try:
            save_model(self.run.run_dir.path, self.run.model, {**self.run.metadata, **extra})
        except OSError as error:
            raise RunDirError(
                f"cannot write the model into {self.run.run_dir.path}: "
                f"{error.strerror or error}; its previous model.pt and checkpoint are intact"
            ) from error

    def update(self, state: RunState, record: EpochRecord) -> bool:
        """Save the model if ``record`` beats the best score so far; say whether it did."""
        if not record.val_score < state.best_score:
            return False
        state.best_score, state.best_epoch = record.val_score, record.epoch
        self.save(state)
        return True


class MetricsLog:
    """``metrics.csv``: one row per epoch, rewritten whole so a resumed run keeps exactly its epochs."""

    KEYS = ("train_loss", "val_mae", "grad_norm", "weight")

    def __init__(self, run_dir: RunDir, names: list[str], *, probe: bool) -> None:
        self.run_dir = run_dir
        self.names = names
        keys = (*self.KEYS, "probe_grad_norm") if probe else self.KEYS
        self.columns = ["epoch", "lr", "train_loss", "val_score", "seconds"] + [
            f"{key}/{name}" for key in keys for name in names
        ]

    def row(self, record: EpochRecord) -> dict[str, Any]:
        row: dict[str, Any] = {
            "epoch": record.epoch,
            "lr": record.lr,
            "train_loss": float(record.means.loss.nanmean()),
            "val_score": record.val_score,
            "seconds": round(record.seconds, 3),
        }
        per_task = {
            "train_loss": record.means.loss,
            "val_mae": record.val_mae,
            "grad_norm": record.means.grad_norm,
            "weight": record.means.weight,
        }
        if record.probe_grad_norm is not None:
            per_task["probe_grad_norm"] = record.probe_grad_norm
        for key, values in per_task.items():
            row.update({f"{key}/{n}": v for n, v in zip(self.names, values.tolist(), strict=True)})
        return row

    def write(self, history: list[dict[str, Any]]) -> None:
        try:
            self.run_dir.write_metrics(self.columns, history)
        except OSError as error:
            raise RunDirError(
                f"cannot write {self.run_dir.metrics_path}: {error.strerror or error}"
            ) from error


def checkpoint_state(run: TrainingRun, state: RunState) -> dict[str, Any]:
    """Everything needed to continue ``run`` bit for bit after the epoch ``state`` ends."""
    return {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "balancer": run.balancer.state_dict(),
        "rng": rng_state(run.shuffle_generator),
        "run": vars(state),
    }


def start(run: TrainingRun) -> RunState:
    """A fresh run: the untrained model is the selected one until an epoch beats it.

    The checkpoint of epoch 0 is written too, so a run stopped in its first epoch resumes.
    """
    state = RunState()
    ModelSelection(run).save(state)
    if run.is_main:
        save_checkpoint(run.run_dir.path, checkpoint_state(run, state))
    return state


def restore_checkpoint(run: TrainingRun) -> RunState:
    """Load the run's checkpoint into its model, optimizer, scheduler, balancer and RNGs.

    Raises:
        RunDirError: the checkpoint is damaged, or not of this run's model and settings.
    """
    path = run.run_dir.checkpoint_path
    checkpoint = load_checkpoint(run.run_dir.path)
    try:
        state = _run_state(checkpoint["run"])
        run.model.load_state_dict(checkpoint["model"])
        run.optimizer.load_state_dict(checkpoint["optimizer"])
        run.scheduler.load_state_dict(checkpoint["scheduler"])
        run.balancer.load_state_dict(checkpoint["balancer"])
        set_rng_state(checkpoint["rng"], run.shuffle_generator)
    except Exception as error:  # load_state_dict raises several kinds on foreign states
        raise RunDirError(f"{path} does not fit this run: {error}"[:400]) from error
    return state


def _run_state(record: object) -> RunState:
    """The :class:`RunState` of a checkpoint's ``run`` entry, checked for consistency."""
    if not isinstance(record, dict) or set(record) != set(vars(RunState())):
        raise ValueError(f"its 'run' entry must hold {sorted(vars(RunState()))}")
    state = RunState(**record)
    epoch, best = state.epoch, state.best_epoch
    if not (
        type(epoch) is int
        and type(best) is int
        and 0 <= best <= epoch
        and isinstance(state.best_score, float)
        and isinstance(state.history, list)
        and len(state.history) == epoch
        and all(isinstance(row, dict) for row in state.history)
    ):
        raise ValueError(f"its 'run' entry is inconsistent (epoch {epoch!r}, best {best!r})")
    return state


def run_epoch(run: TrainingRun, epoch: int) -> EpochRecord:
    """Train one epoch, validate, and read the results to the host once."""
    config, split = run.config, run.split
    started = time.perf_counter()
    run.model.train()
    sums = train_epoch(
        run.forward,
        run.balancer,
        run.optimizer,
        run.graphs,
        run.standardized,
        split.train[torch.randperm(len(split.train), generator=run.shuffle_generator)],
        batch_size=config.batch_size,
        autocast=run.autocast,
        data_parallel=run.data_parallel,
    )
    run.model.eval()
    val_mae = mean_absolute_errors(
        run.predict,
        run.graphs,
        run.targets,
        split.val,
        batch_size=config.eval_batch_size,
        data_parallel=run.data_parallel,
    )
    # the epoch's one read from the device
    means, val_mae = torch.cat([sums.means().stacked(), val_mae[None]]).cpu().split([4, 1])
    seconds = time.perf_counter() - started
    probe = None
    if config.gradient_probe and run.is_main:
        probe = probe_gradient_norms(run, split.train[: config.gradient_probe])
    return EpochRecord(
        epoch=epoch + 1,
        lr=run.optimizer.param_groups[0]["lr"],
        val_score=run.scorer.score(val_mae[0]),
        seconds=seconds,
        means=EpochMeans.unstack(means),
        val_mae=run.scorer.reported(val_mae[0]),
        probe_grad_norm=probe,
    )


def fit(run: TrainingRun, state: RunState) -> RunState:
    """Train from ``state.epoch`` to ``config.epochs``, selecting, logging and checkpointing."""
    config = run.config
    selection = ModelSelection(run)
    log = MetricsLog(run.run_dir, run.scorer.target_names, probe=bool(config.gradient_probe))
    if run.is_main:
        log.write(state.history)
    show = run.is_main and (config.progress if config.progress is not None else sys.stderr.isatty())
    progress = tqdm(
        range(state.epoch, config.epochs),
        initial=state.epoch,
        total=config.epochs,
        desc="epoch",
        disable=not show,
        dynamic_ncols=True,
    )
    for epoch in progress:
        record = run_epoch(run, epoch)
        run.scheduler.step(record.val_score)
        state.epoch = record.epoch
        selection.update(state, record)
        run.balancer.end_epoch()
        state.history.append(log.row(record))
        if run.is_main:
            log.write(state.history)
            save_checkpoint(run.run_dir.path, checkpoint_state(run, state))
        progress.set_postfix(
            loss=f"{state.history[-1]['train_loss']:.4f}",
            val=f"{record.val_score:.4g}",
            best=state.best_epoch,
        )
    progress.close()
    return state


def probe_gradient_norms(run: TrainingRun, index: Tensor) -> Tensor:
    """``[T]`` shared-gradient norm of each task's standardized MSE on the molecules ``index``.

    In eval mode and with ``torch.autograd.grad``, so no parameter, ``.grad`` or random state
    of the run changes.
    """
    model = run.model
    was_training = model.training
    model.eval()
    device_index, batch = next(run.graphs.batches(index, len(index)))
    losses, _ = masked_mse(model(batch).float(), run.standardized[device_index])
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    norms = shared_gradient_norms(losses, shared).detach().cpu()
    model.train(was_training)
    return norms


def evaluate_selected_model(run: TrainingRun, state: RunState) -> dict[str, Any]:
    """Evaluate the selected (best-validation) weights on the test split; write and return it."""
    if run.data_parallel is not None:
        run.data_parallel.barrier()  # rank 0 has written the selected model.pt
    best = torch.load(run.run_dir.weights_path, map_location=run.device, weights_only=True)
    run.model.load_state_dict(best)
    run.model.eval()
    mae = mean_absolute_errors(
        run.predict,
        run.graphs,
        run.targets,
        run.split.test,
        batch_size=run.config.eval_batch_size,
        data_parallel=run.data_parallel,
    ).cpu()
    report = {
        "split": "test",
        "n_molecules": len(run.split.test),
        "best_epoch": state.best_epoch,
        **run.scorer.report(mae),
    }
    if run.is_main:
        run.run_dir.write_test_metrics(report)
    return report
