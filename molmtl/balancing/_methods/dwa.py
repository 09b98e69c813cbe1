"""Dynamic weight average (``dwa``): weights from the rate of change of epoch losses."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from molmtl.balancing._base import Parameters
from molmtl.balancing._loss_weighting import LossWeighting, masked_softmax


class DynamicWeightAverage(LossWeighting):
    """Liu, Johns & Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019.

    In epoch e the weights are ``n · softmax(r / temperature)`` over the n labelled tasks, with
    ``r_t = L̄_t(e−1) / L̄_t(e−2)`` the ratio of the task's mean training loss over the two
    previous epochs; 1 for every task in the first two epochs (and for a task without labels
    in either epoch). The mean losses are accumulated on the device from the losses given to
    :meth:`backward` and closed by :meth:`end_epoch`, which the training loop must call once
    per epoch.

    Args:
        temperature: softmax temperature (2.0).
    """

    requires_nonnegative_losses = True

    def __init__(
        self,
        shared: Parameters,
        task_specific: Parameters | None = None,
        *,
        n_tasks: int,
        temperature: float = 2.0,
    ) -> None:
        super().__init__(shared, task_specific, n_tasks=n_tasks)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        dtype = self.state_dtype
        self.loss_sum_ = torch.zeros(n_tasks, device=self.device, dtype=dtype)
        self.loss_count_ = torch.zeros(n_tasks, device=self.device, dtype=dtype)
        # Mean losses of the last two epochs, oldest first; NaN = no labels that epoch.
        self.epoch_losses_ = torch.full((2, n_tasks), float("nan"), device=self.device, dtype=dtype)
        self.epochs_ = 0

    def loss_weights(self, losses: Tensor, mask: Tensor) -> Tensor:
        self.loss_sum_ += torch.where(mask, losses, 0.0)
        self.loss_count_ += mask
        if self.epochs_ < 2:
            return torch.ones_like(losses)
        previous, last = self.epoch_losses_
        ratios = torch.nan_to_num(last / previous, nan=1.0, posinf=1.0)
        return mask.sum() * masked_softmax(ratios / self.temperature, mask)

    def end_epoch(self) -> None:
        super().end_epoch()
        mean = torch.where(self.loss_count_ > 0, self.loss_sum_ / self.loss_count_, float("nan"))
        self.epoch_losses_ = torch.stack([self.epoch_losses_[1], mean])
        self.loss_sum_.zero_()
        self.loss_count_.zero_()
        self.epochs_ += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "loss_sum_": self.loss_sum_.clone(),
            "loss_count_": self.loss_count_.clone(),
            "epoch_losses_": self.epoch_losses_.clone(),
            "epochs_": self.epochs_,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = {"loss_sum_", "loss_count_", "epoch_losses_", "epochs_"}
        if set(state) != expected:
            raise ValueError(
                f"{self.name} state must have keys {sorted(expected)}, got {sorted(state)}"
            )
        self.loss_sum_ = state["loss_sum_"].to(self.device).clone()
        self.loss_count_ = state["loss_count_"].to(self.device).clone()
        self.epoch_losses_ = state["epoch_losses_"].to(self.device).clone()
        self.epochs_ = int(state["epochs_"])
