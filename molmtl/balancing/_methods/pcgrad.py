"""PCGrad: project each task gradient off the gradients it conflicts with."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from molmtl.balancing._methods._gram import GramianWeightedAggregator, TaskOrders


class PCGrad(GramianWeightedAggregator):
    """Gradient surgery: remove from each task gradient its conflicting components.

    Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020.

    For every task ``i`` (in parallel), starting from ``g_i``, visit the tasks ``j`` in a random
    order and, whenever the current ``g_i'`` has ``g_i' . g_j < 0``, replace it by its
    projection ``g_i' - (g_i' . g_j / |g_j|^2) g_j``; the update is ``sum_i g_i'``. As in the
    official code and LibMTL, each task draws its own order over all tasks, itself included
    (projecting onto its own normal only fires if ``g_i'`` has turned against ``g_i``).

    Each ``g_i'`` is tracked as coefficients over the original gradients, so everything runs on
    the ``[T, T]`` Gram matrix with tensor ops only: no host sync, T sequential steps.
    Zero gradients are never projected on (no division by zero). Each training step
    (:meth:`aggregate`) draws new orders; :meth:`weights` uses the orders the next step will
    draw, without drawing them.

    Args:
        seed: seed of the task orders; None (default) draws it from torch's global RNG. The
            orders do not depend on torch's default dtype; their generator state is in
            :meth:`state_dict`.
    """

    def __init__(self, *, seed: int | None = None) -> None:
        self._orders = TaskOrders(seed)

    def gramian_weights(
        self, gram: Tensor, losses: Tensor, mask: Tensor, *, grads_dtype: torch.dtype
    ) -> Tensor:
        orders = self._orders.peek(gram.shape[0], gram.device, include_self=True)
        return _project_conflicts(gram, mask, orders)

    def _advance(
        self, gram: Tensor, losses: Tensor, mask: Tensor, *, grads_dtype: torch.dtype
    ) -> Tensor:
        orders = self._orders.draw(gram.shape[0], gram.device, include_self=True)
        return _project_conflicts(gram, mask, orders)

    def state_dict(self) -> dict[str, Any]:
        return {"orders": self._orders.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._orders.load_state_dict(state["orders"])


def _project_conflicts(gram: Tensor, mask: Tensor, orders: Tensor) -> Tensor:
    """``[T]`` PCGrad weights from the ``[T, T]`` Gram matrix and the ``[T, T]`` task orders."""
    n_tasks = gram.shape[0]
    squared_norms = gram.diagonal()
    safe_squared_norms = torch.where(squared_norms > 0, squared_norms, 1.0)
    # Row i holds g_i' as coefficients over the original gradients; absent tasks stay 0.
    coefficients = torch.diag(mask.to(gram.dtype))
    task_ids = torch.arange(n_tasks, device=gram.device)
    for position in range(n_tasks):
        partners = orders[:, position]
        # One-hot [T, T] of each row's partner: scatter by arithmetic, safe from host syncs.
        visited = (partners[:, None] == task_ids).to(gram.dtype)
        dots = (coefficients * gram[partners]).sum(dim=1)  # g_i' . g_partner(i)
        shifts = dots.clamp(max=0.0) / safe_squared_norms[partners]
        coefficients = coefficients - visited * shifts[:, None]
    return coefficients.sum(dim=0)
