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

from molmtl.balancing._numerics import compute_dtype
from molmtl.balancing._validation import LossMonitor, checked_mask

#: what ``shared`` and ``task_specific`` accept: e.g. ``module.parameters()``.
Parameters = Iterable[torch.nn.Parameter]


class Aggregator(ABC):
    """The aggregation step of a gradient-balancing method.

    Takes the matrix of per-task gradients of the shared parameters and returns the per-task
    coefficients ``weights`` such that the shared update is ``weights @ grads``. Calling the
    aggregator returns that update directly.

    Tasks where ``mask`` is False have no labels in the batch: they must get weight 0 and must
    not influence the other tasks' weights. Stateful aggregators (e.g. GradVac's EMA of target
    similarities) keep their state as tensors and expose it through ``state_dict``.

    :meth:`aggregate` is the training step, the one balancers call: it returns the update and
    moves any state on. :meth:`weights` only answers the question: it returns the weights that
    :meth:`aggregate` would apply to the same inputs and leaves the state as it is. Stateful
    aggregators, and those whose update is not ``weights @ grads`` (DB-MTL's, which weights
    smoothed gradients), override :meth:`aggregate`.
    """

    #: whether :meth:`weights` reads ``losses`` (e.g. GradNorm); others ignore it.
    needs_losses: bool = False
    #: whether the losses must be >= 0 (methods that take ratios or logarithms of them).
    requires_nonnegative_losses: bool = False
    #: whether each head (task-specific parameters) gets its task's gradient scaled by
    #: :meth:`head_weights` (as the official Nash-MTL code); False: the plain ``Σ_t ∇ℓ_t``.
    weight_heads: bool = False

    def head_weights(self) -> Tensor:
        """``[T]`` scales of the tasks' head gradients in the last :meth:`aggregate` step.

        Read by the balancer right after :meth:`aggregate`, only when :attr:`weight_heads`.
        """
        raise NotImplementedError(f"{type(self).__name__} does not weight the heads")

    @abstractmethod
    def weights(self, grads: Tensor, losses: Tensor, mask: Tensor) -> Tensor:
        """Per-task coefficients of the update, without side effects (asking twice changes nothing).

        Args:
            grads: ``[T, P]`` per-task gradients of the shared parameters (rows of tasks with
                ``mask`` False are zero). A workspace reused by the next step: do not modify
                it in place or keep a reference to it (copy what must persist).
            losses: ``[T]`` the task losses of the batch, detached and before any log
                transform (a balancer's log transform changes the gradients, not these).
            mask: ``[T]`` bool, True for tasks with labels in this batch.

        Returns:
            ``[T]`` coefficients, on ``grads``' device; 0 where ``mask`` is False.
        """

    def aggregate(self, grads: Tensor, losses: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The training step: the ``[P]`` shared update and the ``[T]`` weights that produced it.

        Takes the same arguments as :meth:`weights` and moves the aggregator's state on. The
        update becomes the parameters' ``.grad``: it must not be a view of the aggregator's own
        state.
        """
        weights = self.weights(grads, losses, mask)
        return weights @ grads, weights

    def __call__(
        self, grads: Tensor, losses: Tensor | None = None, mask: Tensor | None = None
    ) -> Tensor:
        """:meth:`aggregate`'s ``[P]`` update for ``grads`` ``[T, P]`` (all tasks labelled by default)."""
        n_tasks = grads.shape[0]
        if losses is None:
            losses = grads.new_ones(n_tasks)
        if mask is None:
            mask = torch.ones(n_tasks, dtype=torch.bool, device=grads.device)
        return self.aggregate(grads, losses, mask)[0]

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(
                f"{type(self).__name__} is stateless but got state keys {sorted(state)}"
            )


class Balancer(ABC):
    """Turns the T per-task losses of a batch into gradients on the model's parameters.

    Usage in any PyTorch loop::

        balancer = molmtl.balancing.get("dbmtl", shared=encoder.parameters(),
                                        task_specific=heads.parameters(), n_tasks=T)
        optimizer.zero_grad()
        diagnostics = balancer.backward(losses)   # losses: [T]
        optimizer.step()
        ...
        balancer.end_epoch()                      # once per epoch (DWA reads epoch losses)

    Invalid losses (NaN, inf, or negative for methods that take logarithms or ratios of the
    losses) raise :class:`InvalidLossError`: at once on the CPU; on an accelerator the bad step
    and all later ones become no-ops and the error is raised by a later :meth:`backward`, by
    :meth:`check`, :meth:`end_epoch` or :meth:`state_dict`, without a host sync in the step.

    Args:
        shared: parameters shared by all tasks (the encoder). A parameter listed more than once
            counts once (tied weights, or ``parameters()`` of overlapping modules); those that
            do not require grad are left out.
        task_specific: parameters that belong to one task each (the heads); may be empty;
            de-duplicated like ``shared``.
        n_tasks: T, the number of tasks.
    """

    #: whether the losses must be >= 0 (methods that take logarithms or ratios of them).
    requires_nonnegative_losses: bool = False

    def __init__(
        self,
        shared: Iterable[torch.nn.Parameter],
        task_specific: Iterable[torch.nn.Parameter] | None = None,
        *,
        n_tasks: int,
    ) -> None:
        if isinstance(n_tasks, bool) or not isinstance(n_tasks, int) or n_tasks < 1:
            raise ValueError(f"n_tasks must be an int >= 1, got {n_tasks!r}")
        self.shared_params: list[torch.nn.Parameter] = _unique_trainable(shared)
        self.task_params: list[torch.nn.Parameter] = _unique_trainable(task_specific or [])
        if not self.shared_params:
            raise ValueError("shared must contain at least one parameter that requires grad")
        shared_ids = {id(p) for p in self.shared_params}
        if any(id(p) in shared_ids for p in self.task_params):
            raise ValueError("a parameter is in both shared and task_specific; pass each once")
        kinds = {(p.device, p.dtype) for p in [*self.shared_params, *self.task_params]}
        if len(kinds) > 1:
            raise ValueError(
                f"all parameters must share one device and dtype, got {sorted(map(str, kinds))}"
            )
        self.n_tasks = n_tasks
        self.device: torch.device = self.shared_params[0].device
        #: the dtype of the method's own state and arithmetic: the parameters', at least float32.
        self.state_dtype: torch.dtype = compute_dtype(self.shared_params[0].dtype)
        self._monitor = LossMonitor(type(self).__name__)

    @property
    def name(self) -> str:
        """The method's name in messages: its registry name when built by ``get``."""
        return self._monitor.method

    @name.setter
    def name(self, value: str) -> None:
        self._monitor.method = value

    def backward(self, losses: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        """Fill ``.grad`` of the shared and task-specific parameters.

        Gradients are added to ``.grad`` like ``loss.backward()`` does (call
        ``optimizer.zero_grad()`` first). The graph of ``losses`` is freed afterwards.

        Args:
            losses: ``[T]`` per-task losses of the current batch (each a scalar that requires grad).
            mask: ``[T]`` bool, True where the task has labels in this batch (default: all True).
                A masked-out task contributes nothing and leaves the method's state for that
                task untouched; its loss must still be finite (its value is ignored).

        Returns:
            Diagnostics as device tensors (no host sync): ``"weights"`` ``[T]`` the per-task
            weights applied, ``"grad_norms"`` ``[T]`` the norms of the per-task shared gradients
            (NaN for methods that never form them).
        """
        mask = checked_mask(losses, mask, self.n_tasks, self.name)
        bad = self._monitor.bad_flag(losses, mask, self.requires_nonnegative_losses)
        if bad is not None:
            mask = mask & ~bad
        return self._backward(losses, mask, bad)

    @abstractmethod
    def _backward(self, losses: Tensor, mask: Tensor, bad: Tensor | None) -> dict[str, Tensor]:
        """:meth:`backward` after validation.

        ``mask`` is already False everywhere on a bad step; ``bad`` is the 0-d device flag of
        a bad step (``None`` when the losses were checked on the host), and gradients written
        must be zeroed where it is True.
        """

    def end_epoch(self) -> None:
        """Hook called by the training loop at the end of every epoch.

        A no-op for most methods; DWA turns the epoch's mean losses into next epoch's weights.
        Also raises any :class:`InvalidLossError` still pending on an accelerator.
        """
        self.check()

    def check(self) -> None:
        """Raise :class:`InvalidLossError` if any step so far had invalid losses (syncs)."""
        self._monitor.check()

    def state_dict(self) -> dict[str, Any]:
        """Training state (buffers, step counters, learnable weights) as tensors."""
        self.check()
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(
                f"{type(self).__name__} is stateless but got state keys {sorted(state)}"
            )


def _unique_trainable(params: Iterable[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    """The parameters of ``params`` that require grad, each once (by identity), in order.

    A parameter listed twice would otherwise get its gradient written twice.
    """
    if isinstance(params, Tensor):
        raise TypeError("parameters must be an iterable of tensors (e.g. [param]), got a tensor")
    unique: dict[int, torch.nn.Parameter] = {}
    for param in params:
        if not isinstance(param, Tensor):
            raise TypeError(f"parameters must be tensors, got {type(param).__name__}")
        if param.requires_grad and not param.is_leaf:
            raise ValueError(
                "parameters must be leaf tensors (e.g. module.parameters()), got a computed "
                f"tensor of shape {list(param.shape)} whose .grad would never be filled"
            )
        if param.requires_grad:
            unique.setdefault(id(param), param)
    return list(unique.values())
