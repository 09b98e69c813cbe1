"""Target standardization with statistics of the training split only."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

Array = TypeVar("Array", np.ndarray, torch.Tensor)


class TargetScaler:
    """Per-task standardization ``(y - mean_) / std_``, ignoring missing (NaN) labels.

    Fit it on the training rows only, so that validation and test labels never leak into
    the statistics. A task with fewer than two labels (or constant labels) gets ``std_ = 1``.
    """

    def fit(self, y_train: np.ndarray | torch.Tensor) -> TargetScaler:
        """Learn ``mean_ [T]`` and ``std_ [T]`` (float64) from ``y_train [N, T]``."""
        y = np.asarray(
            y_train.detach().cpu() if isinstance(y_train, torch.Tensor) else y_train,
            dtype=np.float64,
        )
        if y.ndim != 2:
            raise ValueError(f"y_train must be [n_molecules, n_tasks], got shape {y.shape}")
        labelled = ~np.isnan(y)
        counts = labelled.sum(0)
        filled = np.where(labelled, y, 0.0)
        mean = filled.sum(0) / np.maximum(counts, 1)
        variance = np.where(labelled, (y - mean) ** 2, 0.0).sum(0) / np.maximum(counts, 1)
        std = np.sqrt(variance)
        self.mean_ = mean
        self.std_ = np.where((counts >= 2) & (std > 0), std, 1.0)
        self.n_labels_ = counts
        return self

    def _statistics(self, like: Array) -> tuple[Array, Array]:
        if not hasattr(self, "mean_"):
            raise RuntimeError("TargetScaler is not fitted; call fit(y_train) first")
        if isinstance(like, torch.Tensor):
            return (
                torch.as_tensor(self.mean_, dtype=like.dtype, device=like.device),
                torch.as_tensor(self.std_, dtype=like.dtype, device=like.device),
            )
        return self.mean_, self.std_

    def transform(self, y: Array) -> Array:
        """``[N, T]`` physical units → standardized (NaN stays NaN)."""
        mean, std = self._statistics(y)
        return (y - mean) / std

    def inverse_transform(self, z: Array) -> Array:
        """``[N, T]`` standardized → physical units."""
        mean, std = self._statistics(z)
        return z * std + mean

    def state_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean_.tolist(), "std": self.std_.tolist()}

    @classmethod
    def from_state_dict(cls, state: dict[str, list[float]]) -> TargetScaler:
        scaler = cls()
        scaler.mean_ = np.asarray(state["mean"], dtype=np.float64)
        scaler.std_ = np.asarray(state["std"], dtype=np.float64)
        return scaler
