"""From a TrainConfig to a dataset, its split and the target statistics."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from molmtl import data
from molmtl.data import MoleculeDataset, Split
from molmtl.rundir import RunDir, RunDirError
from molmtl.training.config import SPLITS, ConfigError, TrainConfig

_PART_NAMES = {"train": "training", "val": "validation", "test": "test"}


def load_dataset(config: TrainConfig) -> MoleculeDataset:
    """The dataset the config names, featurized with its featurizer.

    Raises:
        ConfigError: the data cannot be read or is invalid (e.g. a text or infinite label);
            ``FileNotFoundError`` when it is not there.
    """
    try:
        if config.dataset == "qm9":
            return data.load_qm9(
                config.data,
                targets=config.targets,
                featurizer=config.featurizer,
                cache_dir=config.cache_dir,
            )
        return data.load_csv(
            config.data,
            smiles_column=config.smiles_column,
            target_columns=config.targets,
            featurizer=config.featurizer,
            cache_dir=config.cache_dir,
            use_cache=config.cache_dir is not None,
        )
    except ValueError as error:
        raise ConfigError(f"data: {error}") from error


def describe_source(config: TrainConfig) -> str:
    """Where the data of ``config`` comes from, for messages."""
    return config.data if config.data is not None else "QM9 (found by the default lookup)"


def check_dataset(config: TrainConfig, dataset: MoleculeDataset) -> None:
    """Refuse data without a valid molecule, or with a target that has no label at all."""
    source = describe_source(config)
    if not len(dataset):
        rows = len(dataset.rejected)
        reason = f" (row 0: {dataset.rejected['error'].iloc[0]})" if rows else ""
        raise ConfigError(
            f"data: {source} has no valid molecule: {rows} data rows, none featurized{reason}"
        )
    counts = dataset.mask.sum(0).tolist()
    for name, count in zip(dataset.target_names, counts, strict=True):
        if count == 0:
            raise ConfigError(
                f"target {name!r} has no label in {source} (none of its {len(dataset)} "
                "molecules has a value); leave it out of targets or add labels"
            )


def check_split(config: TrainConfig, dataset: MoleculeDataset, split: Split) -> None:
    """Refuse a split with an empty part, or a target unlabelled in training or validation."""
    sizes = split.sizes()
    for part, size in sizes.items():
        if size == 0:
            shown = ", ".join(f"{_PART_NAMES[p]} {n}" for p, n in sizes.items())
            raise ConfigError(
                f"split: the {config.split} split of {sum(sizes.values())} molecules leaves the "
                f"{_PART_NAMES[part]} split empty ({shown}); use more molecules or other "
                "split_fractions"
            )
    mask = dataset.mask
    for part in ("train", "val"):
        counts = mask[getattr(split, part)].sum(0).tolist()
        for name, count in zip(dataset.target_names, counts, strict=True):
            if count == 0:
                raise ConfigError(
                    f"target {name!r} has no label among the {sizes[part]} "
                    f"{_PART_NAMES[part]} molecules of the split; add labels, or leave it out"
                )


def check_same_data(run_dir: RunDir, dataset: MoleculeDataset, context: str) -> None:
    """Refuse data that differs from what the run in ``run_dir`` was trained on (its recorded
    fingerprint; runs written before fingerprints are not checked)."""
    recorded = run_dir.read_config().get("data")
    if recorded is None:
        return
    if not isinstance(recorded, dict) or recorded.get("sha256") != dataset.fingerprint():
        trained_on = recorded.get("n_molecules", "?") if isinstance(recorded, dict) else "?"
        raise ConfigError(
            f"{context}: the data given ({len(dataset)} molecules) is not the data "
            f"{run_dir.path} was trained on ({trained_on} molecules): molecules, labels or their "
            "order differ; give the run's own dataset (--data)"
        )


def benchmark_split(smiles: list[str], config: TrainConfig) -> Split:
    return data.qm9_benchmark_split(len(smiles), config.seed)


def random_split(smiles: list[str], config: TrainConfig) -> Split:
    return data.random_split(len(smiles), config.split_fractions, config.seed)


def scaffold_split(smiles: list[str], config: TrainConfig) -> Split:
    return data.scaffold_split(smiles, config.split_fractions, config.seed)


def make_split(config: TrainConfig, dataset: MoleculeDataset) -> Split:
    """The train/val/test split of ``dataset`` (indices into it), reproducible from the seed.

    With ``n_molecules``, a seeded random subset is split and its indices are mapped back to
    the whole dataset, so ``splits.json`` always indexes the dataset as loaded.
    """
    n = len(dataset.smiles)
    if config.n_molecules is not None and config.n_molecules > n:
        raise ConfigError(
            f"n_molecules is {config.n_molecules} but the dataset has only {n} molecules"
        )
    chosen = np.arange(n)
    if config.n_molecules is not None:
        chosen = np.sort(np.random.default_rng(config.seed).permutation(n)[: config.n_molecules])
    split = SPLITS.get(config.split)([dataset.smiles[i] for i in chosen], config)
    return dataclasses.replace(
        split, train=chosen[split.train], val=chosen[split.val], test=chosen[split.test]
    )


def target_records(dataset: MoleculeDataset) -> list[dict[str, Any]]:
    """The dataset's targets as JSON-ready dicts (``name``, ``unit``, ``report_unit`` ...)."""
    return [target.to_dict() for target in dataset.targets]


def read_split(run_dir: RunDir, n_molecules: int) -> Split:
    """The run's ``splits.json``, its indices checked against the ``n_molecules`` of the data.

    Raises:
        RunDirError: the file is missing, does not parse, or is not a valid split of the data.
    """
    if not run_dir.splits_path.is_file():
        raise RunDirError(
            f"{run_dir.path} lacks {run_dir.splits_path.name}; was it written by `molmtl train`?"
        )
    record = run_dir.read_splits()
    try:
        return Split.from_dict(record, n_molecules)
    except ValueError as error:
        raise RunDirError(f"{run_dir.splits_path}: {error}") from error
