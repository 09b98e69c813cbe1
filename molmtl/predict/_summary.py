"""Counts of a prediction run, for the summary line of ``molmtl predict``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PredictionSummary:
    """How many rows were predicted, how many were invalid, how many valid ones lie outside
    the model's applicability domain (the model extrapolates there)."""

    n_rows: int = 0
    n_invalid: int = 0
    n_out_of_domain: int = 0

    @classmethod
    def count(cls, valid: np.ndarray, in_domain: np.ndarray) -> PredictionSummary:
        """Counts from the ``[n]`` bool ``valid`` and ``in_domain`` columns of a prediction."""
        valid = np.asarray(valid, dtype=bool)
        in_domain = np.asarray(in_domain, dtype=bool)
        return cls(len(valid), int((~valid).sum()), int((valid & ~in_domain).sum()))

    def __add__(self, other: PredictionSummary) -> PredictionSummary:
        return PredictionSummary(
            self.n_rows + other.n_rows,
            self.n_invalid + other.n_invalid,
            self.n_out_of_domain + other.n_out_of_domain,
        )

    def __str__(self) -> str:
        return (
            f"{self.n_rows} rows: {self.n_valid} predicted, {self.n_invalid} invalid "
            f"(NaN properties), {self.n_out_of_domain} valid but outside the model's domain "
            "(extrapolated; domain_note says why)"
        )

    @property
    def n_valid(self) -> int:
        return self.n_rows - self.n_invalid
