"""Uncertainty weighting (``uw``): learnable homoscedastic task uncertainties."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from molmtl.balancing._base import Parameters
from molmtl.balancing._loss_weighting import LossWeighting
from molmtl.balancing._optim import step_present


class UncertaintyWeighting(LossWeighting):
    """Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for
    Scene Geometry and Semantics", CVPR 2018.

    Minimizes ``Σ_t ½ exp(−s_t) L_t + ½ s_t`` over the model and the log-variances
    ``s_t = log σ_t²`` (LibMTL's form, initialized at −0.5). The model gets the gradient with
    weights ``½ exp(−s_t)``; ``s`` takes one step of its own Adam optimizer per batch (so the
    user's optimizer needs nothing special), whose state is in ``state_dict``. The ``s_t`` of a
    task without labels in the batch, and its Adam moments, stay as they are.

    Args:
        lr: learning rate of the internal Adam optimizer of ``s`` (1e-3).
        init: initial value of every ``s_t`` (−0.5, as in LibMTL).
    """

    def __init__(
        self,
        shared: Parameters,
        task_specific: Parameters | None = None,
        *,
        n_tasks: int,
        lr: float = 1e-3,
        init: float = -0.5,
    ) -> None:
        super().__init__(shared, task_specific, n_tasks=n_tasks)
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.log_variances_ = torch.full(
            (n_tasks,), init, device=self.device, dtype=self.state_dtype
        )
        self.log_variances_.requires_grad_(True)
        self.optimizer_ = torch.optim.Adam([self.log_variances_], lr=lr)

    def loss_weights(self, losses: Tensor, mask: Tensor) -> Tensor:
        with torch.no_grad():
            weights = 0.5 * torch.exp(-self.log_variances_)
            # d/ds of ½ exp(−s) L + ½ s, over the labelled tasks.
            self.log_variances_.grad = torch.where(mask, 0.5 - weights * losses, 0.0)
        step_present(self.optimizer_, self.log_variances_, mask)
        return weights

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "log_variances_": self.log_variances_.detach().clone(),
            "optimizer_": self.optimizer_.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = {"log_variances_", "optimizer_"}
        if set(state) != expected:
            raise ValueError(
                f"{self.name} state must have keys {sorted(expected)}, got {sorted(state)}"
            )
        with torch.no_grad():
            self.log_variances_.copy_(state["log_variances_"])
        self.optimizer_.load_state_dict(state["optimizer_"])
