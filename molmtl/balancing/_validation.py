"""Checks on what a balancer is given: the shape of losses and mask, and their values.

Value checks must not stall a GPU: on the CPU a bad loss raises at once (reading a CPU tensor
costs nothing), elsewhere the check leaves a flag on the device, the step becomes a no-op, and
the error is raised at a later call once the flag has reached the host by itself.
"""

from __future__ import annotations

import torch
from torch import Tensor


class InvalidLossError(ValueError):
    """The losses of a step are NaN or infinite, or negative for a method that takes their log."""


class InvalidGradientError(InvalidLossError):
    """The gradients of finite losses are NaN or infinite (e.g. overflow in the backward pass).

    A subclass of :class:`InvalidLossError`, so one ``except`` catches both.
    """


def _tasks(flags: Tensor) -> str:
    """``"task 1"`` or ``"tasks 0, 2"``: the indices where ``flags`` ``[T]`` is True."""
    indices = [str(index) for index in flags.nonzero().flatten().tolist()]
    return f"task{'s' if len(indices) > 1 else ''} {', '.join(indices)}"


def checked_mask(losses: Tensor, mask: Tensor | None, n_tasks: int, method: str) -> Tensor:
    """Validate ``losses`` ``[T]`` and ``mask`` ``[T]`` and return the mask on the losses' device.

    Raises:
        ValueError / TypeError naming the bad argument and what would be valid.
    """
    if not isinstance(losses, Tensor):
        raise TypeError(
            f"{method}: losses must be a torch.Tensor of shape [{n_tasks}], got {type(losses).__name__}"
        )
    if losses.shape != (n_tasks,):
        raise ValueError(
            f"{method}: losses must have shape [{n_tasks}] (one scalar loss per task, "
            f"e.g. torch.stack(task_losses)), got shape {list(losses.shape)}"
        )
    if not losses.is_floating_point():
        raise TypeError(f"{method}: losses must be floating point, got dtype {losses.dtype}")
    if not losses.requires_grad:
        raise ValueError(
            f"{method}: losses do not require grad; pass the losses before .detach()/.item()"
        )
    if mask is None:
        return torch.ones(n_tasks, dtype=torch.bool, device=losses.device)
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        found = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise TypeError(f"{method}: mask must be a bool tensor of shape [{n_tasks}], got {found}")
    if mask.shape != (n_tasks,):
        raise ValueError(
            f"{method}: mask must have shape [{n_tasks}], got shape {list(mask.shape)}"
        )
    return mask.to(losses.device, non_blocking=True)


class LossMonitor:
    """Detects NaN, infinite and (optionally) negative losses without a host sync on accelerators.

    On the CPU :meth:`bad_flag` raises :class:`InvalidLossError` before anything is updated.
    On other devices it returns a 0-d bool device tensor ``bad`` that the balancer uses to turn
    the step into a no-op (all tasks treated as unlabelled, gradients zeroed); the flag is
    sticky (every later step is a no-op too) and copied to the host asynchronously, and the error is raised by the first later
    :meth:`raise_if_reported` that finds the copy finished, or by :meth:`check` (which syncs).
    """

    def __init__(self, method: str) -> None:
        self.method = method
        self._steps = 0
        self._any_bad: Tensor | None = None  # sticky device flag
        self._first_bad_losses: Tensor | None = None
        self._first_bad_step: Tensor | None = None
        self._first_bad_gradients: Tensor | None = None  # [T] tasks with non-finite gradients
        self._host_flag: Tensor | None = None
        self._copied: torch.cuda.Event | None = None
        self._nonnegative = False

    def bad_flag(self, losses: Tensor, mask: Tensor, nonnegative: bool) -> Tensor | None:
        """``None`` when the losses were checked on the host, else the device flag of this step."""
        self._steps += 1
        self.raise_if_reported()
        values = losses.detach()
        # A masked task's loss still flows through autograd, so it must be finite too.
        bad_per_task = ~torch.isfinite(values)
        if nonnegative:
            bad_per_task |= mask & (values < 0)
        bad = bad_per_task.any()
        if values.device.type == "cpu":
            if bad:
                raise InvalidLossError(
                    self._message(values, self._steps, nonnegative, skipped=False)
                )
            return None
        # Sticky: once a step was bad, later steps are no-ops too until the error surfaces.
        return self._record(values, bad, nonnegative)

    def gradient_flag(self, losses: Tensor, finite_rows: Tensor) -> Tensor | None:
        """Check the per-task gradients of a step whose losses passed :meth:`bad_flag`.

        Args:
            losses: ``[T]`` the step's losses (for the message).
            finite_rows: ``[T]`` bool, True where task t's gradient is finite everywhere.

        Returns:
            ``None`` on the CPU (where a non-finite gradient raises
            :class:`InvalidGradientError` at once), else the sticky 0-d device flag, True when
            this step or an earlier one was bad.
        """
        values = losses.detach()
        if values.device.type == "cpu":
            if not finite_rows.all():
                raise InvalidGradientError(self._gradient_message(values, ~finite_rows, False))
            return None
        return self._record(values, ~finite_rows.all(), self._nonnegative, ~finite_rows)

    def _record(
        self,
        values: Tensor,
        bad: Tensor,
        nonnegative: bool,
        bad_gradients: Tensor | None = None,
    ) -> Tensor:
        device = values.device
        if self._any_bad is None:
            self._any_bad = torch.zeros((), dtype=torch.bool, device=device)
            self._first_bad_losses = torch.zeros_like(values)
            self._first_bad_step = torch.zeros((), dtype=torch.long, device=device)
            self._first_bad_gradients = torch.zeros(values.shape, dtype=torch.bool, device=device)
            self._host_flag = torch.zeros((), dtype=torch.bool, pin_memory=device.type == "cuda")
        first = bad & ~self._any_bad
        self._first_bad_losses = torch.where(first, values, self._first_bad_losses)
        self._first_bad_step = torch.where(first, self._steps, self._first_bad_step)
        if bad_gradients is not None:
            self._first_bad_gradients = torch.where(first, bad_gradients, self._first_bad_gradients)
        self._any_bad = self._any_bad | bad
        self._nonnegative = nonnegative
        self._host_flag.copy_(self._any_bad, non_blocking=True)
        if device.type == "cuda":
            if self._copied is None:
                self._copied = torch.cuda.Event()
            self._copied.record()
        return self._any_bad

    def raise_if_reported(self) -> None:
        """Raise if an earlier step was bad and its flag has already reached the host (no sync)."""
        if self._copied is not None and self._copied.query() and self._host_flag:
            self.check()

    def check(self) -> None:
        """Raise :class:`InvalidLossError` if any step so far was bad (syncs with the device)."""
        if self._any_bad is not None and bool(self._any_bad):
            step = int(self._first_bad_step)
            if self._first_bad_gradients.any():
                raise InvalidGradientError(
                    self._gradient_message(
                        self._first_bad_losses, self._first_bad_gradients, True, step
                    )
                )
            raise InvalidLossError(
                self._message(self._first_bad_losses, step, self._nonnegative, skipped=True)
            )

    def _message(self, values: Tensor, step: int, nonnegative: bool, skipped: bool) -> str:
        rule = (
            "finite and >= 0 (this method takes their logarithm or ratios)"
            if nonnegative
            else "finite"
        )
        # Negative losses are named too: with `nonnegative` any negative one may be the culprit.
        bad = ~torch.isfinite(values) | ((values < 0) if nonnegative else False)
        return (
            f"{self.method}: invalid losses at step {step}: {values.tolist()} ({_tasks(bad)}); "
            f"every task loss must be {rule}, including the losses of tasks masked out (use a "
            f"masked mean with count.clamp(min=1)); {_outcome(skipped)}"
        )

    def _gradient_message(
        self, values: Tensor, bad: Tensor, skipped: bool, step: int | None = None
    ) -> str:
        return (
            f"{self.method}: non-finite gradient at step {step or self._steps} for "
            f"{_tasks(bad)} although the losses {values.tolist()} are finite (overflow in the "
            f"backward pass, or an operation with an infinite derivative such as sqrt at 0); "
            f"{_outcome(skipped)}"
        )


def _outcome(skipped: bool) -> str:
    if skipped:
        return "that step and every later one were turned into no-ops (zero gradients)"
    return "no gradient was written"
