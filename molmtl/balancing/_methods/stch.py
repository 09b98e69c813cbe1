"""STCH (``stch``): smooth Tchebycheff scalarization of the nadir-normalised log losses."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from molmtl.balancing._base import Parameters
from molmtl.balancing._loss_weighting import LossWeighting

#: added to every (normalised) loss before the logarithm, as in the authors' code.
_LOG_EPS = 1e-20


class STCH(LossWeighting):
    """Lin et al., "Smooth Tchebycheff Scalarization for Multi-Objective Optimization", ICML 2024.

    After a warm-up, minimises the smooth maximum of the log losses relative to a nadir point
    ``z``, over the n labelled tasks, as the authors' code does (Xi-L/STCH, ``STCH_MTL``, the
    same as LibMTL's ``STCH``)::

        n mu log sum_t exp(l_t / mu),   l_t = log(L_t / z_t + 1e-20)

    i.e. weights ``n softmax(l / mu)_t / (z_t exp(l_t))``; ``mu -> 0`` approaches the
    Tchebycheff (worst-task) scalarization. During the first ``warmup_epochs`` epochs the
    objective is ``sum_t log(L_t + 1e-20)`` (weights ``1 / (L_t + 1e-20)``), and ``z_t`` is task
    t's mean loss over the batches of the last warm-up epoch that label it (1 for a task
    without labels in that epoch). Epochs are counted by :meth:`end_epoch`, which the training
    loop must call once per epoch (without it, STCH never leaves the warm-up). LibMTL's
    ``STCH_warmup_epoch=4`` (0-based: epochs 0-4 warm up) is ``warmup_epochs=5`` here.

    Args:
        mu: the smoothing parameter (1.0, the authors' code and LibMTL default).
        warmup_epochs: epochs before STCH starts, >= 1 (5, the authors' code default).

    State: ``epochs_``, the loss sums and counts of the last warm-up epoch, and ``nadir_`` ``[T]``
    (None until the warm-up ends).
    """

    requires_nonnegative_losses = True

    def __init__(
        self,
        shared: Parameters,
        task_specific: Parameters | None = None,
        *,
        n_tasks: int,
        mu: float = 1.0,
        warmup_epochs: int = 5,
    ) -> None:
        super().__init__(shared, task_specific, n_tasks=n_tasks)
        if mu <= 0:
            raise ValueError(f"STCH mu must be > 0, got {mu}")
        if (
            isinstance(warmup_epochs, bool)
            or not isinstance(warmup_epochs, int)
            or warmup_epochs < 1
        ):
            raise ValueError(
                f"STCH warmup_epochs must be an int >= 1 (the nadir point is measured in the "
                f"last warm-up epoch), got {warmup_epochs!r}"
            )
        self.mu = mu
        self.warmup_epochs = warmup_epochs
        dtype = self.state_dtype
        self.loss_sum_ = torch.zeros(n_tasks, device=self.device, dtype=dtype)
        self.loss_count_ = torch.zeros(n_tasks, device=self.device, dtype=dtype)
        self.nadir_: Tensor | None = None
        self.epochs_ = 0

    def loss_weights(self, losses: Tensor, mask: Tensor) -> Tensor:
        if self.nadir_ is None:
            if self.epochs_ == self.warmup_epochs - 1:
                self.loss_sum_ += torch.where(mask, losses, 0.0)
                self.loss_count_ += mask
            return 1.0 / (losses + _LOG_EPS)
        log_ratios = torch.log(losses / self.nadir_ + _LOG_EPS)
        scaled = torch.where(mask, log_ratios / self.mu, float("-inf"))
        normaliser = scaled.logsumexp(dim=0)  # -inf only when no task is labelled
        log_shares = scaled - torch.where(torch.isfinite(normaliser), normaliser, 0.0)
        # softmax_t / (L_t + 1e-20 z_t), in logs: no overflow for tiny L_t or mu.
        return mask.sum() * torch.exp(log_shares - log_ratios) / self.nadir_

    def end_epoch(self) -> None:
        super().end_epoch()
        self.epochs_ += 1
        if self.epochs_ == self.warmup_epochs:
            counts = self.loss_count_
            self.nadir_ = torch.where(counts > 0, self.loss_sum_ / counts.clamp(min=1), 1.0)

    def state_dict(self) -> dict[str, Any]:
        state = {
            **super().state_dict(),
            "epochs_": self.epochs_,
            "loss_sum_": self.loss_sum_.clone(),
            "loss_count_": self.loss_count_.clone(),
        }
        if self.nadir_ is not None:
            state["nadir_"] = self.nadir_.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        required = {"epochs_", "loss_sum_", "loss_count_"}
        if not required <= set(state) <= required | {"nadir_"}:
            raise ValueError(
                f"{self.name} state must have keys {sorted(required)} and, after the warm-up, "
                f"'nadir_'; got {sorted(state)}"
            )
        self.epochs_ = int(state["epochs_"])
        self.loss_sum_ = state["loss_sum_"].to(self.device).clone()
        self.loss_count_ = state["loss_count_"].to(self.device).clone()
        nadir = state.get("nadir_")
        self.nadir_ = None if nadir is None else nadir.to(self.device).clone()
