"""The balancer behind every loss-weighting method: one backward pass of a weighted sum."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor

from molmtl.balancing._base import Balancer, Parameters
from molmtl.balancing._gradients import accumulate_grads
from molmtl.balancing._numerics import all_finite


def masked_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    """``[T]`` softmax over the tasks where ``mask`` is True, 0 elsewhere (all 0 if none)."""
    shifted = torch.where(mask, logits, float("-inf"))
    largest = shifted.max()
    # -inf only when no task is present (then all weights are 0); any finite max shifts.
    largest = torch.where(torch.isfinite(largest), largest, 0.0)
    exp = torch.where(mask, torch.exp(shifted - largest), 0.0)
    return exp / exp.sum().clamp(min=torch.finfo(exp.dtype).tiny)


class LossWeighting(Balancer):
    """Base of the methods that reweight the losses: the update is ``∇ Σ_t w_t L_t``.

    Subclasses implement :meth:`loss_weights`; the weights are treated as constants (methods
    with learnable weights learn them inside :meth:`loss_weights` with their own optimizer,
    so the user's optimizer needs nothing special). Shared and task-specific parameters get the
    gradient of the same weighted sum. ``"grad_norms"`` is NaN: no per-task gradient is formed.
    """

    @abstractmethod
    def loss_weights(self, losses: Tensor, mask: Tensor) -> Tensor:
        """``[T]`` weights of this step.

        Args:
            losses: ``[T]`` detached losses (1.0 where ``mask`` is False).
            mask: ``[T]`` bool, True for tasks labelled in this batch (all False on a bad step).
        """

    def _backward(self, losses: Tensor, mask: Tensor, bad: Tensor | None) -> dict[str, Tensor]:
        # The method computes in its state's dtype whatever the losses' dtype.
        observed = torch.where(mask, losses.detach(), 1.0).to(self.state_dtype)
        weights = torch.where(mask, self.loss_weights(observed, mask), 0.0)
        params = [*self.shared_params, *self.task_params]
        grads = torch.autograd.grad(
            (weights.to(losses.dtype) * losses).sum(),
            params,
            allow_unused=True,
            materialize_grads=True,
        )
        finite = all_finite(list(grads))
        # One weighted backward pass: a non-finite gradient cannot be traced to one task.
        blamed = mask | ~mask.any()  # every task when none is labelled
        flag = self._monitor.gradient_flag(losses, finite.expand(self.n_tasks) | ~blamed)
        accumulate_grads(params, grads, flag if bad is None else bad | flag)
        return {"weights": weights, "grad_norms": torch.full_like(weights, float("nan"))}


class LogLossWeighting(LossWeighting):
    """Base of the methods built on ``log(L_t + eps)`` (``si``, ``gls``): they take the option ``eps``.

    Args:
        eps: ε added to every loss before the logarithm (1e-8, as in DB-MTL).
    """

    requires_nonnegative_losses = True

    def __init__(
        self,
        shared: Parameters,
        task_specific: Parameters | None = None,
        *,
        n_tasks: int,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(shared, task_specific, n_tasks=n_tasks)
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.eps = eps
