"""Base classes of the balancing engine: :class:`Balancer` and :class:`Aggregator`.

Nothing here knows about molecules: a balancer sees a vector of T task losses and two groups of
parameters (shared, task-specific), and fills their ``.grad``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor


class Aggregator(ABC):
    """The pure aggregation step of a gradient-balancing method.

    Takes the matrix of per-task gradients of the shared parameters and returns the per-task
    coefficients ``weights`` such that the shared update is ``weights @ grads``. Calling the
    aggregator returns that update directly.

    Tasks where ``mask`` is False have no labels in the batch: they must get weight 0 and must
    not influence the other tasks' weights. Stateful aggregators (e.g. GradVac's EMA of target
    similarities) keep their state as tensors and expose it through ``state_dict``.
    """

    #: whether :meth:`weights` reads ``losses`` (e.g. IMTL-L, GradNorm); others ignore it.
    needs_losses: bool = False

    @abstractmethod
    def weights(self, grads: Tensor, losses: Tensor, mask: Tensor) -> Tensor:
        """Per-task coefficients of the update.

        Args:
            grads: ``[T, P]`` per-task gradients of the shared parameters.
            losses: ``[T]`` the task losses (as seen by the method, i.e. after any log transform).
            mask: ``[T]`` bool, True for tasks with labels in this batch.

        Returns:
            ``[T]`` coefficients, on ``grads``' device; 0 where ``mask`` is False.
        """

    def __call__(self, grads: Tensor, losses: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """The ``[P]`` shared update ``weights(grads, losses, mask) @ grads``."""
        n_tasks = grads.shape[0]
        if losses is None:
            losses = grads.new_zeros(n_tasks)
        if mask is None:
            mask = torch.ones(n_tasks, dtype=torch.bool, device=grads.device)
        return self.weights(grads, losses, mask) @ grads

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} is stateless but got state keys {sorted(state)}")


class Balancer(ABC):
    """Turns the T per-task losses of a batch into gradients on the model's parameters.

    Usage in any PyTorch loop::

        balancer = molmtl.balancing.get("dbmtl", shared=encoder.parameters(),
                                        task_specific=heads.parameters(), n_tasks=T)
        optimizer.zero_grad()
        diagnostics = balancer.backward(losses)   # losses: [T]
        optimizer.step()

    Args:
        shared: parameters shared by all tasks (the encoder).
        task_specific: parameters that belong to one task each (the heads); may be empty.
        n_tasks: T, the number of tasks.
    """

    def __init__(
        self,
        shared: Iterable[torch.nn.Parameter],
        task_specific: Iterable[torch.nn.Parameter] | None = None,
        *,
        n_tasks: int,
    ) -> None:
        if n_tasks < 1:
            raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
        self.shared_params: list[torch.nn.Parameter] = [p for p in shared if p.requires_grad]
        self.task_params: list[torch.nn.Parameter] = [
            p for p in (task_specific or []) if p.requires_grad
        ]
        if not self.shared_params:
            raise ValueError("shared must contain at least one parameter that requires grad")
        self.n_tasks = n_tasks

    @abstractmethod
    def backward(self, losses: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Fill ``.grad`` of the shared and task-specific parameters.

        Args:
            losses: ``[T]`` per-task losses of the current batch (each a scalar that requires grad).
            mask: ``[T]`` bool, True where the task has labels in this batch (default: all True).

        Returns:
            Diagnostics as device tensors (no host sync): ``"weights"`` ``[T]`` the per-task
            weights applied, ``"grad_norms"`` ``[T]`` the norms of the per-task shared gradients
            (NaN for methods that never form them).
        """

    def state_dict(self) -> dict[str, Any]:
        """Training state (buffers, step counters, learnable weights) as tensors."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} is stateless but got state keys {sorted(state)}")
