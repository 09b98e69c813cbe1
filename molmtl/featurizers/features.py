"""Feature definitions: the single place where every node and edge feature is declared.

A featurizer lists its features as :class:`Feature` objects; the same list produces the
feature matrices (:func:`encode`), the JSON spec stored with a trained model, and the table
in ``docs/data.md`` (:func:`markdown_table`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Feature:
    """One feature block of a node or edge feature vector.

    A categorical feature (``values`` given) is one-hot encoded over ``values``, plus a last
    "other" column when ``other`` is True (values outside the list land there). A scalar
    feature (``values`` empty) is one column holding ``raw * scale``; booleans are scalars.
    """

    name: str
    description: str
    values: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()
    other: bool = False
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.labels and len(self.labels) != len(self.values):
            raise ValueError(
                f"feature {self.name!r}: {len(self.labels)} labels for {len(self.values)} values"
            )

    @property
    def categorical(self) -> bool:
        return bool(self.values)

    @property
    def dim(self) -> int:
        return len(self.values) + int(self.other) if self.categorical else 1

    @property
    def column_labels(self) -> list[str]:
        """Human-readable name of each output column."""
        if not self.categorical:
            return [self.name]
        labels = list(self.labels) if self.labels else [str(v) for v in self.values]
        return labels + (["other"] if self.other else [])

    def category(self, raw: np.ndarray) -> np.ndarray:
        """Column (within this block) of each raw value. ``raw``: ``[n]`` integers."""
        values = np.asarray(self.values)
        order = np.argsort(values, kind="stable")
        sorted_values = values[order]
        position = np.searchsorted(sorted_values, raw).clip(0, len(values) - 1)
        found = sorted_values[position] == raw
        if not self.other and not found.all():
            missing = sorted(set(raw[~found].tolist()))
            raise ValueError(f"feature {self.name!r}: values {missing} not in {list(self.values)}")
        return np.where(found, order[position], len(values))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "dim": self.dim,
            "columns": self.column_labels,
            "scale": self.scale,
        }


def total_dim(features: Sequence[Feature]) -> int:
    return sum(f.dim for f in features)


def encode(features: Sequence[Feature], raw: np.ndarray) -> np.ndarray:
    """Encode raw per-item values into a float32 feature matrix, vectorized over items.

    Args:
        features: the feature blocks, in output order.
        raw: ``[n, len(features)]`` one raw value per block (category value or scalar).

    Returns:
        ``[n, total_dim(features)]`` float32.
    """
    n = raw.shape[0]
    out = np.zeros((n, total_dim(features)), dtype=np.float32)
    rows = np.arange(n)
    offset = 0
    for column, feature in enumerate(features):
        if feature.categorical:
            out[rows, offset + feature.category(raw[:, column].astype(np.int64))] = 1.0
        else:
            out[:, offset] = raw[:, column] * feature.scale
        offset += feature.dim
    return out


def markdown_table(features: Sequence[Feature]) -> str:
    """The features as a Markdown table (columns, dimension, meaning) for the documentation."""
    lines = ["| columns | feature | dim | values | meaning |", "|---|---|---|---|---|"]
    offset = 0
    for feature in features:
        span = f"{offset}" if feature.dim == 1 else f"{offset}–{offset + feature.dim - 1}"
        values = ", ".join(feature.column_labels) if feature.categorical else "scalar"
        if not feature.categorical and feature.scale != 1.0:
            values = f"scalar × {feature.scale:g}"
        lines.append(
            f"| {span} | `{feature.name}` | {feature.dim} | {values} | {feature.description} |"
        )
        offset += feature.dim
    lines.append(f"| | **total** | **{offset}** | | |")
    return "\n".join(lines)
