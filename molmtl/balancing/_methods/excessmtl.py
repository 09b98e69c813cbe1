"""ExcessMTL: task weights that grow with each task's estimated excess risk."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from molmtl.balancing._base import Aggregator


class ExcessMTL(Aggregator):
    """Multi-task learning with excess risks.

    He et al., "Robust Multi-Task Learning with Excess Risks", ICML 2024, as in the authors'
    code (yifei-he/ExcessMTL, the same as LibMTL's ``ExcessMTL``). With ``H_t`` the running
    sum of the squared gradients ``g_t^2`` of task ``t`` (a diagonal, AdaGrad-style curvature),
    its excess risk is estimated by the second-order Taylor bound
    ``e_t = sum_p g_tp^2 / sqrt(H_tp + 1e-7)``. The task weights ``lambda`` start at 1; from the
    second step on they take an exponentiated-gradient step on the excess risks relative to
    their first values ``e_t(0)``::

        lambda_t <- lambda_t exp(step_size e_t / e_t(0)),   then rescaled to sum to T

    and the update is ``sum_t lambda_t g_t`` (with this step's ``lambda``). The authors' code
    back-propagates ``sum_t lambda_t L_t``, so the head of task ``t`` gets ``lambda_t`` times its
    gradient; so does this one with ``weight_heads=True`` (the default, through
    :class:`GradientBalancer`), while ``weight_heads=False`` gives the heads the plain gradient.

    Missing labels (molmtl's extension): an unlabelled task keeps its ``H_t`` and ``lambda_t``;
    ``e_t(0)`` is taken at a task's first labelled step (a task whose first ``e_t`` was 0 keeps
    its weight); the labelled tasks' weights are rescaled to keep their sum, so ``lambda`` keeps
    summing to T. :meth:`aggregate` is the training step; :meth:`weights` gives the weights it
    would apply, leaving the state as it is.

    Args:
        step_size: the exponentiated-gradient step (1e-2, the default of the authors' code and
            of LibMTL, ``robust_step_size``).
        weight_heads: scale each head's gradient by its task's ``lambda_t`` (default True, as
            the authors' code); False gives the heads the plain gradient.

    State: ``squared_grads_`` ``[T, P]`` (the ``H_t``), ``initial_excess_`` ``[T]`` (the
    ``e_t(0)``, NaN before a task's first labelled step) and ``weights_`` ``[T]`` (``lambda``).
    """

    def __init__(self, *, step_size: float = 1e-2, weight_heads: bool = True) -> None:
        if step_size < 0:
            raise ValueError(f"ExcessMTL step_size must be >= 0, got {step_size}")
        self.step_size = step_size
        self.weight_heads = weight_heads
        self._head_weights: Tensor | None = None
        self.squared_grads_: Tensor | None = None
        self.initial_excess_: Tensor | None = None
        self.weights_: Tensor | None = None

    def weights(self, grads: Tensor, losses: Tensor, mask: Tensor) -> Tensor:
        squared, initial, weights = self._state_for(grads)
        masked = torch.where(mask[:, None], grads, 0.0)
        squared = torch.addcmul(squared, masked, masked)
        return torch.where(mask, self._step(masked, squared, initial, weights, mask)[1], 0.0)

    def aggregate(self, grads: Tensor, losses: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        squared, initial, weights = self._state_for(grads)
        masked = torch.where(mask[:, None], grads, 0.0)
        self.squared_grads_ = squared.addcmul_(masked, masked)  # in place: no [T, P] copy
        self.initial_excess_, self.weights_ = self._step(
            masked, self.squared_grads_, initial, weights, mask
        )
        weights = torch.where(mask, self.weights_, 0.0)
        self._head_weights = weights
        return weights @ masked, weights

    def head_weights(self) -> Tensor:
        """``[T]`` the ``lambda`` of the last training step, 0 for absent tasks."""
        if self._head_weights is None:
            raise RuntimeError("ExcessMTL.head_weights() is only defined after a training step")
        return self._head_weights

    def _step(
        self, masked: Tensor, squared: Tensor, initial: Tensor, weights: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The ``[T]`` initial excess risks and weights after this step, from the masked
        ``[T, P]`` gradients and the ``[T, P]`` squared-gradient sums including them."""
        excess = (masked * masked / (squared + 1e-7).sqrt()).sum(dim=1)
        first = mask & torch.isnan(initial)
        updated = mask & ~first & (initial > 0)
        ratios = torch.where(updated, excess / torch.where(updated, initial, 1.0), 0.0)
        # lambda exp(step_size r), shifted in logs by the largest: no overflow for large r.
        logits = torch.where(mask, weights.log() + self.step_size * ratios, float("-inf"))
        largest = logits.max()  # -inf only when no task is labelled
        stepped = torch.exp(logits - torch.where(torch.isfinite(largest), largest, 0.0))
        labelled_sum = torch.where(mask, weights, 0.0).sum()
        rescaled = stepped * (
            labelled_sum / stepped.sum().clamp(min=torch.finfo(weights.dtype).tiny)
        )
        return torch.where(first, excess, initial), torch.where(mask, rescaled, weights)

    def _state_for(self, grads: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``H`` ``[T, P]``, ``e(0)`` ``[T]`` and ``lambda`` ``[T]`` on ``grads``' device."""
        n_tasks = grads.shape[0]
        if self.squared_grads_ is None or self.initial_excess_ is None or self.weights_ is None:
            return (
                torch.zeros_like(grads),
                grads.new_full((n_tasks,), float("nan")),
                grads.new_ones(n_tasks),
            )
        if self.squared_grads_.shape != grads.shape:
            raise ValueError(
                f"ExcessMTL state holds gradients of shape {list(self.squared_grads_.shape)} "
                f"but got {list(grads.shape)}; was it loaded from another model?"
            )
        return (
            self.squared_grads_.to(grads.device),
            self.initial_excess_.to(grads.device),
            self.weights_.to(grads.device),
        )

    def state_dict(self) -> dict[str, Any]:
        if self.squared_grads_ is None or self.initial_excess_ is None or self.weights_ is None:
            return {}
        return {
            "squared_grads_": self.squared_grads_.clone(),
            "initial_excess_": self.initial_excess_.clone(),
            "weights_": self.weights_.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            self.squared_grads_ = self.initial_excess_ = self.weights_ = None
            return
        expected = {"squared_grads_", "initial_excess_", "weights_"}
        if set(state) != expected:
            raise ValueError(
                f"ExcessMTL state must have keys {sorted(expected)}, got {sorted(state)}"
            )
        self.squared_grads_ = state["squared_grads_"].clone()
        self.initial_excess_ = state["initial_excess_"].clone()
        self.weights_ = state["weights_"].clone()
