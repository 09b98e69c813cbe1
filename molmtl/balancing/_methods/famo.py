"""FAMO (``famo``): fast adaptive multitask optimization with learnable loss logits."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from molmtl.balancing._base import Parameters
from molmtl.balancing._loss_weighting import LossWeighting, masked_softmax
from molmtl.balancing._optim import step_present


class FAMO(LossWeighting):
    """Liu et al., "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023.

    The model minimizes ``Σ_t z_t log(L_t + 1e-8) / c`` with ``z = softmax(w)`` and
    ``c = Σ_t z_t / (L_t + 1e-8)`` (a constant), i.e. weights ``z_t / (c (L_t + 1e-8))``;
    the minimum losses of the paper are 0, as in the authors' code. The logits ``w`` are
    learned by their own Adam optimizer (``lr``, weight decay ``gamma``) from the decrease of
    the log losses between consecutive steps.

    Post-step losses: FAMO's update of ``w`` needs the decrease of the log losses over the
    optimizer step. The authors' code and LibMTL's trainer measure it on the same batch, with a
    second forward pass after ``optimizer.step()``. This implementation needs no second pass
    and nothing special in the training loop: it measures the decrease from this batch's
    losses to the next batch's (passed to the next :meth:`backward`, which updates ``w``
    before weighting them, the same point where the authors' loop has updated it). So the
    two coincide when every step sees the same batch (full-batch training); with mini-batches
    the decrease mixes in the difference between batches, and a side-by-side check against
    LibMTL on identical inputs (issue 11) found weights 0.4-0.9% apart from the first step on.
    Only tasks labelled in both batches contribute, and the logit of any other task (with its
    Adam moments and its last log loss) stays as it is.

    Args:
        gamma: weight decay of the logits (0.01, the authors' code default).
        lr: learning rate of the logits' Adam optimizer (0.025, the authors' code default).
    """

    requires_nonnegative_losses = True

    def __init__(
        self,
        shared: Parameters,
        task_specific: Parameters | None = None,
        *,
        n_tasks: int,
        gamma: float = 0.01,
        lr: float = 0.025,
    ) -> None:
        super().__init__(shared, task_specific, n_tasks=n_tasks)
        if lr <= 0 or gamma < 0:
            raise ValueError(f"need lr > 0 and gamma >= 0, got lr={lr}, gamma={gamma}")
        self.logits_ = torch.zeros(
            n_tasks, device=self.device, dtype=self.state_dtype, requires_grad=True
        )
        self.optimizer_ = torch.optim.Adam([self.logits_], lr=lr, weight_decay=gamma)
        self.previous_log_losses_: Tensor | None = None
        self.previous_mask_: Tensor | None = None

    def loss_weights(self, losses: Tensor, mask: Tensor) -> Tensor:
        log_losses = torch.log(losses + 1e-8)
        if self.previous_log_losses_ is not None:
            both = mask & self.previous_mask_
            decrease = torch.where(both, self.previous_log_losses_ - log_losses, 0.0)
            with torch.no_grad():
                # The softmax over the tasks labelled in both batches (all: the plain one),
                # so that the others' logits get no gradient.
                probabilities = torch.where(
                    both.all(),
                    torch.softmax(self.logits_, dim=0),
                    masked_softmax(self.logits_, both),
                )
                # Vector-Jacobian product of the softmax with the decrease (FAMO's update).
                self.logits_.grad = probabilities * (decrease - probabilities @ decrease)
            step_present(self.optimizer_, self.logits_, both)
            log_losses = torch.where(mask, log_losses, self.previous_log_losses_)
        self.previous_log_losses_ = log_losses
        self.previous_mask_ = mask
        with torch.no_grad():
            probabilities = masked_softmax(self.logits_, mask)
        inverse_losses = 1.0 / (losses + 1e-8)
        return probabilities * inverse_losses / (probabilities @ inverse_losses).clamp(min=1e-30)

    def state_dict(self) -> dict[str, Any]:
        state = {
            **super().state_dict(),
            "logits_": self.logits_.detach().clone(),
            "optimizer_": self.optimizer_.state_dict(),
        }
        if self.previous_log_losses_ is not None:
            state["previous_log_losses_"] = self.previous_log_losses_.clone()
            state["previous_mask_"] = self.previous_mask_.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        required = {"logits_", "optimizer_"}
        allowed = required | {"previous_log_losses_", "previous_mask_"}
        if not required <= set(state) <= allowed:
            raise ValueError(
                f"{self.name} state must have keys {sorted(allowed)}, got {sorted(state)}"
            )
        with torch.no_grad():
            self.logits_.copy_(state["logits_"])
        self.optimizer_.load_state_dict(state["optimizer_"])
        self.previous_log_losses_ = state.get("previous_log_losses_")
        self.previous_mask_ = state.get("previous_mask_")
