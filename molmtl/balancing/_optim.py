"""Optimizer steps on per-task learned state that leave the tasks absent from a batch alone."""

from __future__ import annotations

import torch
from torch import Tensor


def step_present(optimizer: torch.optim.Optimizer, values: Tensor, mask: Tensor) -> None:
    """One ``optimizer`` step of the ``[T]`` ``values``, undone where ``mask`` is False.

    Adam's moments (and weight decay) would otherwise move a task's value on a step where it
    has no labels and its gradient is 0; the task's value and its moments are restored bit for
    bit. Step counters are shared by all tasks and move on.

    Args:
        optimizer: the optimizer whose only parameter is ``values``.
        values: ``[T]`` the learned per-task values (a leaf with ``.grad`` set).
        mask: ``[T]`` bool, True for the tasks present in the batch.
    """
    state = optimizer.state.get(values, {})
    kept = {key: item.clone() for key, item in state.items() if _per_task(item, values)}
    before = values.detach().clone()
    optimizer.step()
    with torch.no_grad():
        values.copy_(torch.where(mask, values, before))
        for key, item in optimizer.state[values].items():
            if _per_task(item, values):
                # A moment created by this first step starts at 0, as the optimizer's own.
                item.copy_(torch.where(mask, item, kept.get(key, torch.zeros_like(item))))


def _per_task(item: object, values: Tensor) -> bool:
    return isinstance(item, Tensor) and item.shape == values.shape
