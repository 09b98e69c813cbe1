"""Losses and metrics of multi-task regression with missing labels, computed on the device.

Nothing here reads a tensor back to the host: the trainer accumulates these per epoch and reads
them once.
"""

from __future__ import annotations

import torch
from torch import Tensor


def masked_mse(prediction: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Per-task mean squared error over the labelled entries.

    Args:
        prediction: ``[B, T]``.
        target: ``[B, T]`` with NaN for missing labels.

    Returns:
        ``losses [T]`` (0 for a task with no label in the batch, still attached to the graph so
        the balancer can differentiate it) and ``mask [T]`` bool, True where the task has labels.
    """
    error_sums, counts = masked_squared_error_sums(prediction, target)
    return error_sums / counts.clamp(min=1), counts > 0


def masked_squared_error_sums(prediction: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """``[T]`` sums of squared errors over the labelled entries (attached) and ``[T]`` label counts.

    What ranks reduce in data-parallel training: the global batch's masked MSE is the sum of
    these sums over the ranks divided by the sum of the counts.

    Args:
        prediction: ``[B, T]``.
        target: ``[B, T]`` with NaN for missing labels.
    """
    labelled = ~torch.isnan(target)
    # where() before the difference, so a NaN label never reaches the gradient (0 * NaN = NaN)
    error = torch.where(
        labelled, prediction - torch.nan_to_num(target), torch.zeros_like(prediction)
    )
    return error.square().sum(dim=0), labelled.sum(dim=0)


def absolute_error_sums(prediction: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """``[T]`` sums of absolute errors over labelled entries and ``[T]`` label counts."""
    labelled = ~torch.isnan(target)
    error = torch.where(
        labelled, (prediction - torch.nan_to_num(target)).abs(), torch.zeros_like(prediction)
    )
    return error.sum(dim=0), labelled.sum(dim=0)


def delta_m_percent(mae: Tensor, reference: Tensor) -> Tensor:
    """Δm% = 100 / T · Σ_t (MAE_t − ref_t) / ref_t over tasks with a finite MAE (lower is better)."""
    return 100.0 * torch.nanmean((mae - reference) / reference)


def normalized_mae(mae: Tensor, train_std: Tensor) -> Tensor:
    """Mean over tasks (with a finite MAE) of MAE_t / std_t, with std_t from the training split."""
    return torch.nanmean(mae / train_std)


def shared_gradient_norms(losses: Tensor, shared: list[Tensor]) -> Tensor:
    """``[T]`` norms of ∇_shared L_t, one backward pass per task (``.grad`` is left untouched).

    Args:
        losses: ``[T]`` per-task losses of one forward pass.
        shared: the shared parameters.
    """
    norms = []
    for task, loss in enumerate(losses):
        grads = torch.autograd.grad(
            loss, shared, retain_graph=task < len(losses) - 1, allow_unused=True
        )
        squares = [grad.square().sum() for grad in grads if grad is not None]
        norms.append(torch.stack(squares).sum().sqrt() if squares else loss.new_zeros(()))
    return torch.stack(norms)
