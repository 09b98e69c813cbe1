"""MoCo: tracked task gradients, combined by weights that chase their min-norm point."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from molmtl.balancing._base import Aggregator
from molmtl.balancing._loss_weighting import masked_softmax
from molmtl.balancing._numerics import row_norms, scaled_rows


class MoCo(Aggregator):
    """Multi-objective gradient correction.

    Fernando et al., "Mitigating Gradient Bias in Multi-objective Learning: A Provably
    Convergent Approach", ICLR 2023, in the form of the authors' code as LibMTL ships it. At
    step ``k`` (counting steps where any task is labelled)::

        h_t = L_t g_t / (|g_t| + 1e-8)                      (loss-scaled unit gradients)
        y_t <- y_t - beta_k (y_t - h_t),                     beta_k = beta / k^beta_sigma
        lambda <- softmax(lambda - gamma_k (Y Y^T + rho I) lambda),  gamma_k = gamma / k^gamma_sigma
        update = sum_t lambda_t y_t

    with ``y`` starting at 0 and ``lambda`` at ``1 / T``. The paper's algorithm projects the
    ``lambda`` step onto the simplex; the authors' shared code (and LibMTL) takes the softmax,
    as here. The losses are those before any log transform and the normalization removes the
    log's ``1 / (L + eps)`` factor, so ``moco+log`` has ``moco``'s shared update (up to rounding);
    only its heads get the gradients of the log losses.

    Missing labels (molmtl's extension): an unlabelled task keeps its ``y_t`` and its
    ``lambda_t``; the labelled tasks' weights take the step above among themselves, as if the
    others did not exist (``lambda`` restricted to them and renormalised), and keep their
    share of the simplex. A step where no task is labelled changes nothing.

    :meth:`aggregate` is the training step; :meth:`weights` gives the ``lambda`` it would apply
    (to the tracked ``y``, not to ``grads``), leaving the state as it is.

    Args:
        beta, beta_sigma: step size of the tracking and its decay exponent (0.5, 0.5: LibMTL).
        gamma, gamma_sigma: step size of ``lambda`` and its decay exponent (0.1, 0.5: LibMTL).
        rho: the ridge of the ``lambda`` step (0.0: LibMTL).

    State: ``tracking_`` ``[T, P]`` (the ``y_t``), ``weights_`` ``[T]`` (``lambda``), ``step_`` (k).
    """

    needs_losses = True
    requires_nonnegative_losses = True

    def __init__(
        self,
        *,
        beta: float = 0.5,
        beta_sigma: float = 0.5,
        gamma: float = 0.1,
        gamma_sigma: float = 0.5,
        rho: float = 0.0,
    ) -> None:
        if not 0.0 < beta <= 1.0 or gamma <= 0.0:
            raise ValueError(f"MoCo needs 0 < beta <= 1 and gamma > 0, got {beta=}, {gamma=}")
        if min(beta_sigma, gamma_sigma, rho) < 0.0:
            raise ValueError(
                f"MoCo beta_sigma, gamma_sigma and rho must be >= 0, got "
                f"{beta_sigma=}, {gamma_sigma=}, {rho=}"
            )
        self.beta, self.beta_sigma = beta, beta_sigma
        self.gamma, self.gamma_sigma = gamma, gamma_sigma
        self.rho = rho
        self.tracking_: Tensor | None = None
        self.weights_: Tensor | None = None
        self.step_: Tensor | None = None

    def weights(self, grads: Tensor, losses: Tensor, mask: Tensor) -> Tensor:
        return self._next_state(grads, losses, mask)[3]

    def aggregate(self, grads: Tensor, losses: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        self.tracking_, self.weights_, self.step_, weights = self._next_state(grads, losses, mask)
        return weights @ self.tracking_, weights

    def _next_state(
        self, grads: Tensor, losses: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The state after this step (``y`` ``[T, P]``, ``lambda`` ``[T]``, ``k``) and the
        ``[T]`` weights it applies, computed without touching the current state."""
        tracking, simplex, step = self._state_for(grads)
        step = step + mask.any()
        beta_k = self.beta / step.clamp(min=1).to(grads.dtype) ** self.beta_sigma
        gamma_k = self.gamma / step.clamp(min=1).to(grads.dtype) ** self.gamma_sigma
        norms = row_norms(grads, keepdim=True)
        scaled = torch.where(mask[:, None], grads / (norms + 1e-8) * losses[:, None], 0.0)
        # y - b (y - h), LibMTL's arithmetic; b = 0 leaves an unlabelled task's y bit for bit.
        tracking = tracking - torch.where(mask, beta_k, 0.0)[:, None] * (tracking - scaled)
        share = torch.where(mask, simplex, 0.0).sum()
        current = torch.where(mask, simplex / share.clamp(min=torch.finfo(simplex.dtype).tiny), 0.0)
        present = torch.where(mask[:, None], tracking, 0.0)
        weights = _softmax_step(present, current, gamma_k, self.rho, mask)
        simplex = torch.where(mask, share * weights, simplex)
        return tracking, simplex, step, weights

    def _state_for(self, grads: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``y`` ``[T, P]``, ``lambda`` ``[T]`` and ``k`` on ``grads``' device (initial at first)."""
        n_tasks = grads.shape[0]
        if self.tracking_ is None or self.weights_ is None or self.step_ is None:
            return (
                torch.zeros_like(grads),
                grads.new_full((n_tasks,), 1.0 / n_tasks),
                torch.zeros((), dtype=torch.long, device=grads.device),
            )
        if self.tracking_.shape != grads.shape:
            raise ValueError(
                f"MoCo state tracks gradients of shape {list(self.tracking_.shape)} but got "
                f"{list(grads.shape)}; was it loaded from another model?"
            )
        return (
            self.tracking_.to(grads.device),
            self.weights_.to(grads.device),
            self.step_.to(grads.device),
        )

    def state_dict(self) -> dict[str, Any]:
        if self.tracking_ is None or self.weights_ is None or self.step_ is None:
            return {}
        return {
            "tracking_": self.tracking_.clone(),
            "weights_": self.weights_.clone(),
            "step_": self.step_.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            self.tracking_ = self.weights_ = self.step_ = None
            return
        expected = {"tracking_", "weights_", "step_"}
        if set(state) != expected:
            raise ValueError(f"MoCo state must have keys {sorted(expected)}, got {sorted(state)}")
        self.tracking_ = state["tracking_"].clone()
        self.weights_ = state["weights_"].clone()
        self.step_ = state["step_"].clone()


def _softmax_step(
    tracking: Tensor, current: Tensor, gamma: Tensor, rho: float, mask: Tensor
) -> Tensor:
    """``[T]`` ``softmax(λ − γ (Y Yᵀ λ + ρ λ))`` over the labelled tasks, for ``Y`` ``[T, P]``.

    LibMTL's products, or, where they overflow (losses of 1e20 make ``Y`` that large), the
    same step from the float64 Gram matrix of ``Y``'s rows scaled by powers of two: in the
    gradients' dtype the logits would all be -inf and the weights, and the update, 0.
    """
    direction = tracking @ (tracking.T @ current) + rho * current
    logits = current - gamma * direction
    unit_rows, scales = scaled_rows(tracking)
    gram = (unit_rows @ unit_rows.T).to(torch.float64) * scales[:, None] * scales[None, :]
    wide = current.double()
    wide_logits = wide - gamma * (gram @ wide + rho * wide)
    return torch.where(
        torch.isfinite(logits).all(),
        masked_softmax(logits, mask),
        masked_softmax(wide_logits, mask).to(current.dtype),
    )
