"""GradVac: pull each task gradient towards an adaptive target similarity with the others."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from molmtl.balancing._methods._gram import GramianWeightedAggregator, TaskOrders


class GradVac(GramianWeightedAggregator):
    """Gradient Vaccine: set pairwise gradient similarities to an EMA target.

    Wang et al., "Gradient Vaccine: Investigating and Improving Multi-task Optimization in
    Massively Multilingual Models", ICLR 2021 (whole-model granularity).

    For every task ``i`` (in parallel), starting from ``g_i``, visit the other tasks ``j`` in a
    random order; with ``phi = cos(g_i', g_j)`` and the target ``phi_hat_ij``, if
    ``phi < phi_hat_ij`` add ``|g_i'| (phi_hat sqrt(1 - phi^2) - phi sqrt(1 - phi_hat^2)) /
    (|g_j| sqrt(1 - phi_hat^2)) * g_j`` to ``g_i'``, then update the target
    ``phi_hat_ij <- (1 - beta) phi_hat_ij + beta phi``. The update is ``sum_i g_i'``.

    The targets start at 0 (so the first step is PCGrad's projection) and are updated for every
    visited pair, as in the paper's algorithm and in LibMTL's current GitHub version (since
    February 2024; its PyPI release 1.1.5 only updates a target when a correction is applied).
    Pairs involving an absent task are skipped and keep their target. ``eps`` (1e-8) guards the
    denominators as in LibMTL. LibMTL also offers per-layer and per-matrix granularities
    (``GradVac_group_type`` 1 and 2); only its default, the whole model (0), is implemented.

    Each ``g_i'`` is tracked as coefficients over the original gradients, so everything runs on
    the ``[T, T]`` Gram matrix with tensor ops only: no host sync, T - 1 sequential steps.
    A training step (:meth:`aggregate`) draws new orders and stores the new targets;
    :meth:`weights` gives the same step's weights without either.

    Args:
        beta: EMA rate of the targets (default 0.5, as LibMTL).
        eps: added to the denominators (default 1e-8).
        seed: seed of the task orders; None (default) draws it from torch's global RNG. The
            orders do not depend on torch's default dtype.

    State: ``target_similarity_`` ``[T, T]`` float64 (None before the first step) and the
    orders' generator state.
    """

    def __init__(self, *, beta: float = 0.5, eps: float = 1e-8, seed: int | None = None) -> None:
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"GradVac beta must be in [0, 1], got {beta}")
        if eps < 0:
            raise ValueError(f"GradVac eps must be >= 0, got {eps}")
        self.beta = beta
        self.eps = eps
        self._orders = TaskOrders(seed)
        self.target_similarity_: Tensor | None = None

    def gramian_weights(
        self, gram: Tensor, losses: Tensor, mask: Tensor, *, grads_dtype: torch.dtype
    ) -> Tensor:
        targets = self._targets(gram.shape[0], gram.device)
        orders = self._orders.peek(gram.shape[0], gram.device, include_self=False)
        return self._vaccinate(gram, mask, orders, targets)[0]

    def _advance(
        self, gram: Tensor, losses: Tensor, mask: Tensor, *, grads_dtype: torch.dtype
    ) -> Tensor:
        targets = self._targets(gram.shape[0], gram.device)
        orders = self._orders.draw(gram.shape[0], gram.device, include_self=False)
        weights, self.target_similarity_ = self._vaccinate(gram, mask, orders, targets)
        return weights

    def _vaccinate(
        self, gram: Tensor, mask: Tensor, orders: Tensor, targets: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``[T]`` weights and the updated ``[T, T]`` targets, from the ``[T, T]`` Gram matrix,
        the ``[T, T-1]`` task orders and the ``[T, T]`` targets before the step."""
        n_tasks = gram.shape[0]
        norms = gram.diagonal().sqrt()
        pair_present = mask[:, None] & mask[None, :]
        coefficients = torch.diag(mask.to(gram.dtype))
        task_ids = torch.arange(n_tasks, device=gram.device)
        for position in range(n_tasks - 1):
            partners = orders[:, position]
            # One-hot [T, T] of each row's partner: gather and scatter by arithmetic (no syncs).
            visited = partners[:, None] == task_ids
            dots = (coefficients * gram[partners]).sum(dim=1)  # g_i' . g_j
            current_norms = (coefficients @ gram * coefficients).sum(dim=1).clamp(min=0.0).sqrt()
            partner_norms = norms[partners]
            similarity = dots / (current_norms * partner_norms + self.eps)
            target = torch.where(visited, targets, 0.0).sum(dim=1)
            present = (visited & pair_present).any(dim=1)
            target_sine = (1.0 - target**2).clamp(min=0.0).sqrt()
            sine = (1.0 - similarity**2).clamp(min=0.0).sqrt()
            step = (
                current_norms
                * (target * sine - similarity * target_sine)
                / (partner_norms * target_sine + self.eps)
            )
            step = torch.where(present & (similarity < target), step, 0.0)
            coefficients = coefficients + visited * step[:, None]
            updated = (1 - self.beta) * target + self.beta * similarity
            targets = torch.where(visited & present[:, None], updated[:, None], targets)
        return coefficients.sum(dim=0), targets

    def _targets(self, n_tasks: int, device: torch.device) -> Tensor:
        if self.target_similarity_ is None:
            return torch.zeros(n_tasks, n_tasks, dtype=torch.float64, device=device)
        if self.target_similarity_.shape != (n_tasks, n_tasks):
            raise ValueError(
                f"GradVac was used with {self.target_similarity_.shape[0]} tasks and now got "
                f"{n_tasks}; use a new GradVac for a different number of tasks"
            )
        return self.target_similarity_.to(device)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"orders": self._orders.state_dict()}
        if self.target_similarity_ is not None:
            state["target_similarity"] = self.target_similarity_.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._orders.load_state_dict(state["orders"])
        target = state.get("target_similarity")
        self.target_similarity_ = None if target is None else target.clone()
