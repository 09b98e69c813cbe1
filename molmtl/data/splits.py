"""Train / validation / test splits: QM9 benchmark, random and scaffold; saved as splits.json."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

QM9_SIZE = 130_831
QM9_BENCHMARK_HELD_OUT = 10_000


@dataclass
class Split:
    """Disjoint index arrays into a dataset.

    Attributes:
        train, val, test: ``[n_part]`` int64 indices.
        method: how the split was made (``benchmark``, ``random``, ``scaffold``, or '').
        seed: the seed it was made with, or None.
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    method: str = ""
    seed: int | None = None
    parts: ClassVar[tuple[str, ...]] = ("train", "val", "test")

    def __post_init__(self) -> None:
        for name in self.parts:
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.int64).reshape(-1))
        joined = np.concatenate([getattr(self, name) for name in self.parts])
        if len(np.unique(joined)) != len(joined):
            raise ValueError(
                "split parts overlap or repeat an index; train, val and test must be disjoint"
            )
        if len(joined) and joined.min() < 0:
            raise ValueError(f"split indices must be >= 0, got {joined.min()}")

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in self.parts}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for ``splits.json``)."""
        record: dict[str, Any] = {"method": self.method, "seed": self.seed}
        record.update({name: getattr(self, name).tolist() for name in self.parts})
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any], n_molecules: int | None = None) -> Split:
        """The split of a :meth:`to_dict` record (e.g. a ``splits.json`` read back).

        Args:
            n_molecules: the size of the dataset it indexes; indices must lie below it.

        Raises:
            ValueError: a missing part, a part that is not a list of integers, an index out of
                range, or one that appears twice.
        """
        if not isinstance(record, dict):
            raise ValueError(f"a split record is a JSON object, got {type(record).__name__}")
        missing = [name for name in cls.parts if name not in record]
        if missing:
            raise ValueError(
                f"split record lacks {missing}; expected keys train, val, test (method, seed optional)"
            )
        for name in cls.parts:
            part = record[name]
            if not isinstance(part, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in part
            ):
                raise ValueError(f"split part {name!r} must be a list of integer indices")
            if n_molecules is not None and part and not 0 <= min(part) <= max(part) < n_molecules:
                raise ValueError(
                    f"split part {name!r} has indices outside the {n_molecules} molecules of the "
                    f"dataset (from {min(part)} to {max(part)})"
                )
        method, seed = record.get("method", ""), record.get("seed")
        if not isinstance(method, str) or not (seed is None or type(seed) is int):
            raise ValueError("split record's 'method' must be a string and 'seed' an integer")
        return cls(
            train=record["train"],
            val=record["val"],
            test=record["test"],
            method=method,
            seed=seed,
        )


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(
            f"fractions must be three non-negative numbers (train, val, test) summing to 1, got {fractions}"
        )
    return tuple(float(f) for f in fractions)


def qm9_benchmark_split(n: int, seed: int) -> Split:
    """The QM9 multi-task benchmark split from a seeded permutation.

    For the full dataset (130,831 molecules) this is 110,831 train / 10,000 validation /
    10,000 test: the permutation's first 10,000 are test, the next 10,000 validation. For a
    smaller ``n`` (a subset), validation and test keep the same share (about 7.6 % each).
    """
    if n < 3:
        raise ValueError(f"need at least 3 molecules to split, got {n}")
    held_out = min(QM9_BENCHMARK_HELD_OUT, max(1, round(n * QM9_BENCHMARK_HELD_OUT / QM9_SIZE)))
    permutation = np.random.default_rng(seed).permutation(n)
    return Split(
        train=permutation[2 * held_out :],
        val=permutation[held_out : 2 * held_out],
        test=permutation[:held_out],
        method="benchmark",
        seed=seed,
    )


def random_split(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> Split:
    """Seeded random split of ``n`` items by ``(train, val, test)`` fractions."""
    train_fraction, val_fraction, _ = _check_fractions(fractions)
    permutation = np.random.default_rng(seed).permutation(n)
    n_train = round(train_fraction * n)
    n_val = round(val_fraction * n)
    return Split(
        train=permutation[:n_train],
        val=permutation[n_train : n_train + n_val],
        test=permutation[n_train + n_val :],
        method="random",
        seed=seed,
    )


def murcko_scaffold(smiles: str) -> str:
    """Bemis-Murcko scaffold SMILES; '' for acyclic or unparseable molecules."""
    from rdkit import Chem, rdBase
    from rdkit.Chem.Scaffolds import MurckoScaffold

    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles) if isinstance(smiles, str) else None
    if mol is None:
        return ""
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


def scaffold_split(
    smiles: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> Split:
    """Balanced scaffold split: molecules sharing a Bemis-Murcko scaffold stay in one part.

    Scaffold groups too large for validation or test (more than half their size) go to
    train first; the remaining groups are shuffled with ``seed`` and fill train, then
    validation, then test (as in chemprop's balanced scaffold split).
    """
    train_fraction, val_fraction, _ = _check_fractions(fractions)
    n = len(smiles)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(smiles):
        groups[murcko_scaffold(text)].append(i)
    n_train, n_val = train_fraction * n, val_fraction * n
    n_test = n - n_train - n_val
    big = [g for g in groups.values() if len(g) > n_val / 2 or len(g) > n_test / 2]
    small = [g for g in groups.values() if not (len(g) > n_val / 2 or len(g) > n_test / 2)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(small))
    big.sort(key=len, reverse=True)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for group in big + [small[i] for i in order]:
        if len(train) + len(group) <= n_train:
            train += group
        elif len(val) + len(group) <= n_val:
            val += group
        else:
            test += group
    return Split(train=train, val=val, test=test, method="scaffold", seed=seed)
