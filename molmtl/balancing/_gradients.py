"""Per-task gradients of the shared parameters as one ``[T, P]`` matrix, and writing ``.grad``.

Two backends compute the same numbers:

- ``"sequential"``: T ``torch.autograd.grad`` calls on the retained graph, one per task.
- ``"batched"``: one ``torch.autograd.grad(..., is_grads_batched=True)`` call that vmaps the
  backward pass over the T one-hot output gradients (fewer, larger kernels; T times the
  activation-gradient memory).

``"fastest"`` times both on the first steps of the run and keeps the faster one for this
model and device (both run on those steps; the sequential result is used, so the choice never
changes what those steps compute). ``"auto"`` picks ``DEFAULT_BACKEND[device type]``: on the
CPU sequential, measured faster for the MLP stand-in and the QM9 MPNN and deterministic (a
timing-based choice could differ between a run and its resumption); on CUDA ``"fastest"``,
since which one wins depends on the model there. Apart from ``"fastest"``'s calibration steps
(one host sync per backend per step), nothing here reads a tensor on the host.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

Gradients = tuple[Tensor, list[Tensor]]


def _flatten(grads: Sequence[Tensor], out: Tensor | None = None) -> Tensor:
    return torch.cat([g.reshape(-1) for g in grads], out=out)


def sequential_gradients(
    losses: Tensor,
    shared: list[Tensor],
    task_specific: list[Tensor],
    out: Tensor | None = None,
    *,
    split_task_specific: bool = False,
) -> Gradients:
    """One backward pass per task.

    Args:
        losses: ``[T]`` losses, each differentiable w.r.t. ``shared``.
        shared: the P shared parameters (in total) whose per-task gradients are wanted.
        task_specific: parameters whose gradient is that of ``losses.sum()``.
        out: optional ``[T, P]`` tensor to write the shared gradients into.
        split_task_specific: give each task-specific gradient per task, ``[T, *shape]``, for
            the caller to weight, instead of their sum.

    Returns:
        ``[T, P]`` per-task shared gradients and the task-specific gradients (one per tensor).
    """
    n_tasks = losses.shape[0]
    n_shared = len(shared)
    if out is None:
        out = losses.new_empty(n_tasks, sum(p.numel() for p in shared))
    shared_grads = out
    per_task_grads: list[dict[int, Tensor]] = [{} for _ in task_specific]
    for task in range(n_tasks):
        # Task-specific parameters ride along: their gradients cost nothing extra here.
        grads = torch.autograd.grad(
            losses[task],
            [*shared, *task_specific],
            retain_graph=task < n_tasks - 1,
            allow_unused=True,
        )
        _flatten(
            [
                torch.zeros_like(p) if g is None else g
                for p, g in zip(shared, grads[:n_shared], strict=True)
            ],
            out=shared_grads[task],
        )
        for collected, grad in zip(per_task_grads, grads[n_shared:], strict=True):
            if grad is not None:
                collected[task] = grad
    if split_task_specific:
        task_grads = [
            torch.stack([collected.get(task, torch.zeros_like(p)) for task in range(n_tasks)])
            for p, collected in zip(task_specific, per_task_grads, strict=True)
        ]
    else:
        task_grads = [
            torch.stack(list(collected.values())).sum(dim=0) if collected else torch.zeros_like(p)
            for p, collected in zip(task_specific, per_task_grads, strict=True)
        ]
    return shared_grads, task_grads


def batched_gradients(
    losses: Tensor,
    shared: list[Tensor],
    task_specific: list[Tensor],
    out: Tensor | None = None,
    retain_graph: bool = False,
    *,
    split_task_specific: bool = False,
) -> Gradients:
    """One vmapped backward pass over all tasks; same arguments and results as :func:`sequential_gradients`."""
    n_tasks = losses.shape[0]
    one_hot = torch.eye(n_tasks, dtype=losses.dtype, device=losses.device)
    grads = torch.autograd.grad(
        losses,
        [*shared, *task_specific],
        grad_outputs=one_hot,
        retain_graph=retain_graph,
        is_grads_batched=True,
        allow_unused=True,
    )
    # (materialize_grads would give unused parameters unbatched zeros.)
    grads = [
        losses.new_zeros(n_tasks, *p.shape) if g is None else g
        for p, g in zip([*shared, *task_specific], grads, strict=True)
    ]
    shared_grads = torch.cat([g.reshape(n_tasks, -1) for g in grads[: len(shared)]], dim=1, out=out)
    task_grads = grads[len(shared) :]
    if not split_task_specific:
        task_grads = [g.sum(dim=0) for g in task_grads]
    return shared_grads, task_grads


BACKENDS: dict[str, Callable[..., Gradients]] = {
    "sequential": sequential_gradients,
    "batched": batched_gradients,
}

#: backend used by ``"auto"`` per device type (CPU measured with scripts/bench_balancers.py).
DEFAULT_BACKEND: dict[str, str] = {"cpu": "sequential", "cuda": "fastest"}

#: steps that ``"fastest"`` times both backends on; the first is discarded (one-off costs).
CALIBRATION_STEPS = 4


def _clock(device: torch.device) -> float:
    """Host time after the device's queued work (a sync on CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class PerTaskGradients:
    """Computes per-task gradients with a named backend.

    The ``[T, P]`` result is written into a workspace reused from step to step: freshly
    allocated memory costs page faults on the CPU that are worth ~40% of the backward passes
    of a small model. Callers must not keep it across steps.

    Args:
        backend: ``"auto"``, ``"fastest"``, ``"sequential"`` or ``"batched"`` (see the module
            docstring). ``"fastest"`` settles on ``"sequential"`` with a warning if the batched
            backward fails on the model (an operation vmap cannot batch, such as cuDNN's RNNs).

    Attributes:
        chosen_: the backend ``"fastest"`` settled on, None before (or without) calibration.
        timings_: seconds per calibration step of each backend.
    """

    def __init__(self, backend: str = "auto") -> None:
        valid = ["auto", "fastest", *BACKENDS]
        if backend not in valid:
            raise ValueError(f"unknown backend {backend!r}; valid: {valid}")
        self.backend = backend
        self.chosen_: str | None = None
        self.timings_: dict[str, list[float]] = {name: [] for name in BACKENDS}
        self._workspace: Tensor | None = None

    def resolve(self, device: torch.device) -> str:
        """The backend a step on ``device`` uses (``"fastest"`` until it has chosen)."""
        backend = (
            DEFAULT_BACKEND.get(device.type, "sequential")
            if self.backend == "auto"
            else self.backend
        )
        if backend == "fastest" and self.chosen_ is not None:
            return self.chosen_
        return backend

    def _out(self, losses: Tensor, shared: list[Tensor]) -> Tensor:
        shape = (losses.shape[0], sum(p.numel() for p in shared))
        dtype, device = shared[0].dtype, shared[0].device
        workspace = self._workspace
        if (
            workspace is None
            or workspace.shape != shape
            or workspace.dtype != dtype
            or workspace.device != device
        ):
            self._workspace = torch.empty(shape, dtype=dtype, device=device)
        return self._workspace

    def __call__(
        self,
        losses: Tensor,
        shared: list[Tensor],
        task_specific: list[Tensor],
        *,
        split_task_specific: bool = False,
    ) -> Gradients:
        """Gradients of :func:`sequential_gradients` (same arguments) by the chosen backend."""
        out = self._out(losses, shared)
        backend = self.resolve(losses.device)
        if backend == "fastest":
            return self._calibrate(losses, shared, task_specific, out, split_task_specific)
        return BACKENDS[backend](
            losses, shared, task_specific, out, split_task_specific=split_task_specific
        )

    def _calibrate(
        self,
        losses: Tensor,
        shared: list[Tensor],
        task_specific: list[Tensor],
        out: Tensor,
        split_task_specific: bool,
    ) -> Gradients:
        """Time both backends on this step's graph and return the sequential result."""
        device = losses.device
        started = _clock(device)
        try:
            batched_gradients(losses, shared, task_specific, out, retain_graph=True)
        except RuntimeError as error:
            warnings.warn(
                f"batched per-task gradients failed on this model ({error}); "
                "using backend='sequential'",
                RuntimeWarning,
                stacklevel=4,
            )
            self.chosen_ = "sequential"
        else:
            self.timings_["batched"].append(_clock(device) - started)
        started = _clock(device)
        gradients = sequential_gradients(
            losses, shared, task_specific, out, split_task_specific=split_task_specific
        )
        self.timings_["sequential"].append(_clock(device) - started)
        if self.chosen_ is None and len(self.timings_["sequential"]) >= CALIBRATION_STEPS:
            self.chosen_ = min(
                BACKENDS, key=lambda name: statistics.median(self.timings_[name][1:])
            )
        return gradients


def accumulate_grads(params: Sequence[Tensor], grads: Sequence[Tensor], bad: Tensor | None) -> None:
    """Add ``grads`` to ``params``' ``.grad`` like ``loss.backward()`` would; zeros if ``bad``."""
    for param, grad in zip(params, grads, strict=True):
        if bad is not None:
            grad = torch.where(bad, 0.0, grad)
        if param.grad is None:
            param.grad = grad.detach()
        else:
            param.grad.add_(grad)


def unflatten(vector: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Views of the ``[P]`` ``vector`` shaped like each tensor of ``like`` (no copy)."""
    return [
        chunk.view_as(p)
        for chunk, p in zip(vector.split([p.numel() for p in like]), like, strict=True)
    ]
