"""Evaluation on a split: per-task MAE in reported units, Δm% and the validation score."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from molmtl.models import load_model
from molmtl.rundir import RunDir, RunDirError
from molmtl.training._data import check_same_data, load_dataset, read_split
from molmtl.training._loop import resolve_device
from molmtl.training.config import ConfigError, TrainConfig
from molmtl.training.metrics import absolute_error_sums, delta_m_percent, normalized_mae

if TYPE_CHECKING:
    from molmtl.data import GraphBatch, MoleculeDataset, PackedGraphs
    from molmtl.training._distributed import DataParallel


@torch.no_grad()
def mean_absolute_errors(
    predict: Callable[[GraphBatch], Tensor],
    graphs: PackedGraphs,
    targets: Tensor,
    index: Tensor,
    *,
    batch_size: int,
    data_parallel: DataParallel | None = None,
) -> Tensor:
    """``[T]`` MAE of ``predict`` (physical units) over the molecules ``index``, on the device.

    Args:
        predict: maps a batch to ``[B, T]`` physical-unit predictions.
        graphs: the dataset's graphs, on the device.
        targets: ``[G, T]`` physical-unit labels on the device, NaN = missing.
        index: ``[N]`` CPU long tensor of molecules to evaluate.
        data_parallel: the ranks, each evaluating its shard of ``index``; error sums and
            counts are reduced, so every molecule counts once and all ranks get the same MAE.

    Returns:
        ``[T]`` MAE, NaN for a task with no label among ``index``.
    """
    if data_parallel is not None:
        index = data_parallel.shard(index)
    n_tasks = targets.shape[1]
    error_sums = torch.zeros(n_tasks, device=targets.device)
    counts = torch.zeros(n_tasks, device=targets.device, dtype=torch.long)
    for device_chunk, batch in graphs.batches(index, batch_size):
        sums, labelled = absolute_error_sums(predict(batch).float(), targets[device_chunk])
        error_sums += sums
        counts += labelled
    if data_parallel is not None:
        data_parallel.sum_(error_sums)
        data_parallel.sum_(counts)
    return error_sums / counts


class Scorer:
    """Turns physical-unit MAEs into reported units and the validation score.

    Args:
        targets: the T target records (``TargetInfo.to_dict()``: ``name``, ``unit``,
            ``report_unit``, ``report_scale``), in model order.
        train_std: ``[T]`` standard deviation of each target on the training split.
        reference_maes: single-task MAE per target in reported units, or None.
    """

    def __init__(
        self,
        targets: list[dict[str, Any]],
        train_std: Tensor,
        reference_maes: dict[str, float] | None = None,
    ) -> None:
        self.target_names = [t["name"] for t in targets]
        self.units = [t.get("report_unit") or t.get("unit", "") for t in targets]
        self.factors = torch.tensor([float(t.get("report_scale", 1.0)) for t in targets])
        self.train_std = train_std.detach().cpu().double()
        self.reference = None
        if reference_maes is not None:
            missing = [name for name in self.target_names if name not in reference_maes]
            if missing:
                raise ConfigError(f"reference_maes lacks the target(s) {missing}")
            self.reference = torch.tensor(
                [reference_maes[name] for name in self.target_names], dtype=torch.float64
            )

    def reported(self, mae: Tensor) -> Tensor:
        """``[T]`` physical-unit MAE (host) → reported units."""
        return mae.double() * self.factors.double()

    def score(self, mae: Tensor) -> float:
        """Validation score of a physical-unit ``[T]`` MAE (host tensor): lower is better."""
        if self.reference is not None:
            return float(delta_m_percent(self.reported(mae), self.reference))
        return float(normalized_mae(mae.double(), self.train_std))

    def report(self, mae: Tensor) -> dict[str, Any]:
        """JSON-ready per-task MAE in reported units, their units, Δm% and the normalized MAE."""
        reported = self.reported(mae)
        return {
            "mae": {
                name: _finite_or_none(v)
                for name, v in zip(self.target_names, reported.tolist(), strict=True)
            },
            "units": dict(zip(self.target_names, self.units, strict=True)),
            "delta_m_percent": None
            if self.reference is None
            else _finite_or_none(float(delta_m_percent(reported, self.reference))),
            "normalized_mae": _finite_or_none(float(normalized_mae(mae.double(), self.train_std))),
        }


def _finite_or_none(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None


def evaluate(
    run_dir: str | os.PathLike,
    *,
    split: str = "test",
    device: str | None = None,
    data: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Per-task MAE (reported units), Δm% and normalized MAE of a trained run on one of its splits.

    Reloads the dataset the run was trained on (from its stored config) and the run's
    ``splits.json``, so the numbers are comparable with ``test_metrics.json``.

    Args:
        run_dir: a run directory written by :func:`molmtl.training.train`.
        split: ``"train"``, ``"val"`` or ``"test"``.
        device: where to evaluate (default: CUDA when available).
        data: where the run's dataset is now, when not where training found it (e.g. training
            read ``$MOLMTL_DATA``, which is not set here). It must be the same data: a run
            that recorded its data's fingerprint refuses other data.

    Raises:
        RunDirError: the run directory is incomplete or tampered with.
        ConfigError: the data is not the run's, or cannot be read.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    run_dir = RunDir(run_dir)
    torch_device = resolve_device(device or "auto")
    model, config = load_model(run_dir.path, device=torch_device)
    train_config, dataset = _run_dataset(run_dir, config, data)
    index = torch.as_tensor(getattr(read_split(run_dir, len(dataset)), split), dtype=torch.long)
    graphs = dataset.graphs.to(torch_device)
    targets = torch.as_tensor(dataset.y, dtype=torch.float32, device=torch_device)
    mae = mean_absolute_errors(
        model.predict, graphs, targets, index, batch_size=train_config.eval_batch_size
    ).cpu()
    scorer = Scorer(config["targets"], model.target_std, train_config.reference_maes)
    return {"split": split, "n_molecules": len(index), **scorer.report(mae)}


def _run_dataset(
    run_dir: RunDir, config: dict[str, Any], data: str | os.PathLike | None
) -> tuple[TrainConfig, MoleculeDataset]:
    """The run's training settings and its dataset (from ``data`` when given), checked to be
    the data it was trained on."""
    try:
        train_config = TrainConfig.from_dict({**run_dir.read_train_settings(), "out": "."})
    except ConfigError as error:
        raise RunDirError(f"{run_dir.config_path}: invalid 'train' section: {error}") from error
    if data is not None:
        train_config = dataclasses.replace(train_config, data=str(data))
    dataset = load_dataset(train_config)
    names = [target["name"] for target in config["targets"]]
    if dataset.target_names != names:
        raise RunDirError(
            f"{run_dir.config_path}: its targets {names} are not those its training settings "
            f"load ({dataset.target_names})"
        )
    check_same_data(run_dir, dataset, "cannot evaluate")
    return train_config, dataset
