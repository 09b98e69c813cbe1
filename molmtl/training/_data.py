"""From a TrainConfig to a dataset, its split and the target statistics."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from molmtl import data
from molmtl.data import MoleculeDataset, Split
from molmtl.training.config import SPLITS, ConfigError, TrainConfig


def load_dataset(config: TrainConfig) -> MoleculeDataset:
    """The dataset the config names, featurized with its featurizer."""
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
