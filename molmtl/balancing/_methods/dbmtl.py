"""DB-MTL's gradient-magnitude balancing (``gradmax``; with the log transform it is ``dbmtl``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from molmtl.balancing._base import Aggregator


class GradMax(Aggregator):
    """Smoothed per-task gradients, each rescaled to the largest smoothed norm, then summed.

    The gradient half of DB-MTL: Lin et al., "Dual-Balancing for Multi-Task Learning",
    arXiv:2308.12029 (2023), following the authors' LibMTL implementation, as specified in
    ``specs/dbmtl.md``. At step ``k`` (counting steps where any task is labelled)::

        β_k = β / k^σ
        ĝ_t ← β_k ĝ_t + (1 − β_k) g_t          (buffers start at 0, no bias correction)
        α_t = max_j ‖ĝ_j‖ / (‖ĝ_t‖ + 1e-8)
        update = Σ_t α_t ĝ_t

    Missing labels (molmtl's extension): a task with ``mask`` False keeps its buffer, and is
    left out of the max and of the sum; a step where no task is labelled changes nothing
    (not even ``k``).

    Args:
        beta: β, the smoothing factor (0.9).
        beta_sigma: σ, the decay exponent of β over steps (0.0: constant β).

    State (``state_dict``): ``grad_buffer_`` ``[T, P]`` (the ĝ_t) and ``step_`` (k).
    """

    def __init__(self, beta: float = 0.9, beta_sigma: float = 0.0) -> None:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        if beta_sigma < 0.0:
            raise ValueError(f"beta_sigma must be >= 0, got {beta_sigma}")
        self.beta = beta
        self.beta_sigma = beta_sigma
        self.grad_buffer_: Tensor | None = None
        self.step_: Tensor | None = None

    def aggregate(self, grads: Tensor, losses: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if self.grad_buffer_ is None:
            self.grad_buffer_ = torch.zeros_like(grads)
            self.step_ = torch.zeros((), dtype=torch.long, device=grads.device)
        # A loaded state may come from another device.
        self.grad_buffer_ = self.grad_buffer_.to(grads.device)
        self.step_ = self.step_.to(grads.device)
        if self.grad_buffer_.shape != grads.shape:
            raise ValueError(
                f"GradMax state holds gradients of shape {list(self.grad_buffer_.shape)} "
                f"but got {list(grads.shape)}; was it loaded from another model?"
            )
        self.step_ = self.step_ + mask.any()
        beta_k = self.beta / self.step_.clamp(min=1).to(grads.dtype) ** self.beta_sigma
        # ĝ ← ĝ + (1 − β_k)(g − ĝ) in place (no [T, P] allocation); weight 0 leaves an
        # unlabelled task's buffer bit-for-bit unchanged.
        row_weights = torch.where(mask, 1.0 - beta_k, 0.0)[:, None]
        self.grad_buffer_.lerp_(grads, row_weights)
        norms = self.grad_buffer_.norm(dim=1)
        largest = torch.where(mask, norms, 0.0).max()
        weights = torch.where(mask, largest / (norms + 1e-8), 0.0)
        return weights @ self.grad_buffer_, weights

    def weights(self, grads: Tensor, losses: Tensor, mask: Tensor) -> Tensor:
        """The α_t of this step (applied to the smoothed gradients, not to ``grads``)."""
        return self.aggregate(grads, losses, mask)[1]

    def state_dict(self) -> dict[str, Any]:
        if self.grad_buffer_ is None:
            return {}
        return {"grad_buffer_": self.grad_buffer_.clone(), "step_": self.step_.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            self.grad_buffer_ = self.step_ = None
            return
        if set(state) != {"grad_buffer_", "step_"}:
            raise ValueError(
                f"GradMax state must have keys ['grad_buffer_', 'step_'], got {sorted(state)}"
            )
        self.grad_buffer_ = state["grad_buffer_"].clone()
        self.step_ = state["step_"].clone()
