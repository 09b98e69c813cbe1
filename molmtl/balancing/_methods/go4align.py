"""GO4Align (``go4align``): task weights shared within groups of tasks with similar risk indicators."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from molmtl.balancing._base import Parameters
from molmtl.balancing._loss_weighting import LossWeighting, masked_softmax


class GO4Align(LossWeighting):
    """Shen et al., "GO4Align: Group Optimization for Multi-Task Alignment", NeurIPS 2024.

    Adaptive group risk minimization, as in the paper (Eqs. 3-7) and the authors' code
    (autumn9999/GO4Align, ``GO4ALIGN``). Each step, over the labelled tasks:

    1. scale balance ``P_t = sum_j L_j / (L_t + 1e-8)`` (the code's form: the sum, where the
       paper writes the mean, which only rescales all weights by T; the 1e-8 keeps a zero loss
       finite);
    2. smooth alignment ``Q <- normalise(Q * exp(-beta L))``, ``Q`` starting at ``1 / T``;
    3. group indicators ``gamma_t = P_t Q_t``;
    4. dynamical group assignment: the indicators are clustered into ``groups`` groups by
       K-means, and each task's weight is the centre (mean indicator) of its group; with as
       many groups as tasks the weights are the indicators themselves.

    The clustering is the exact 1-D K-means optimum (dynamic programming over the sorted
    indicators, whose optimal clusters are contiguous), where the authors' code runs Lloyd's
    iterations from a random start; it is deterministic, equivariant to permuting the tasks,
    and runs on the device without a host sync.

    Missing labels (molmtl's extension): an unlabelled task keeps its ``Q_t``; the labelled
    tasks' ``Q`` take the step among themselves, keeping their share, and the indicators use
    ``Q`` renormalised over them, so the weights are those of the labelled tasks alone.

    Args:
        groups: K, the number of groups (5, the paper's choice for QM9's 11 tasks by the elbow
            method; it used 2 for NYUv2's 3 tasks, and the authors' script defaults to 1).
        beta: the temperature of the smooth alignment (1e-4, the authors' code default,
            ``robust_step_size``).

    State: ``smoothness_`` ``[T]`` (``Q``).
    """

    requires_nonnegative_losses = True

    def __init__(
        self,
        shared: Parameters,
        task_specific: Parameters | None = None,
        *,
        n_tasks: int,
        groups: int = 5,
        beta: float = 1e-4,
    ) -> None:
        super().__init__(shared, task_specific, n_tasks=n_tasks)
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"GO4Align groups must be an int >= 1, got {groups!r}")
        if beta < 0:
            raise ValueError(f"GO4Align beta must be >= 0, got {beta}")
        self.groups = groups
        self.beta = beta
        dtype = self.state_dtype
        self.smoothness_ = torch.full((n_tasks,), 1.0 / n_tasks, device=self.device, dtype=dtype)

    def loss_weights(self, losses: Tensor, mask: Tensor) -> Tensor:
        smoothness = torch.where(mask, self.smoothness_, 0.0)
        share = smoothness.sum()
        decayed = smoothness * torch.exp(-self.beta * losses)
        total_decayed = decayed.sum()
        # When every exp(-beta L_t) underflows (losses beyond ~1e6 / beta), the same shares
        # from the logarithms: otherwise all weights, and the update, would silently be 0.
        in_logs = masked_softmax(smoothness.log() - self.beta * losses, smoothness > 0)
        normalised = torch.where(
            total_decayed >= torch.finfo(decayed.dtype).tiny, decayed / total_decayed, in_logs
        )
        # Kept above 0: an entry that underflowed would silence its task for good.
        smallest = torch.finfo(self.smoothness_.dtype).tiny
        self.smoothness_ = torch.where(
            mask, (share * normalised).clamp(min=smallest), self.smoothness_
        )
        total = torch.where(mask, losses, 0.0).sum()
        indicators = total / (losses + 1e-8) * normalised
        return grouped_means(indicators.double(), mask, self.groups).to(losses.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "smoothness_": self.smoothness_.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"smoothness_"}:
            raise ValueError(
                f"{self.name} state must have keys ['smoothness_'], got {sorted(state)}"
            )
        self.smoothness_ = state["smoothness_"].to(self.device).clone()


def grouped_means(values: Tensor, mask: Tensor, groups: int) -> Tensor:
    """Each present value replaced by the mean of its cluster in the optimal 1-D K-means.

    Minimises the within-cluster sum of squares over all partitions of the present values into
    ``min(groups, n)`` clusters. Optimal 1-D clusters are contiguous runs of the sorted values,
    so dynamic programming over the sorted values finds the global optimum exactly; ties go to
    the partition whose last cluster starts earliest, a rule on the sorted values alone, so the
    result is equivariant to permuting the tasks. Tensor ops only: no host sync.

    Args:
        values: ``[T]`` values (float64 recommended: sums of squares).
        mask: ``[T]`` bool, True for the values to cluster.
        groups: K >= 1.

    Returns:
        ``[T]`` cluster means, 0 where ``mask`` is False.
    """
    n_values = values.shape[0]
    order = torch.where(mask, values, float("inf")).argsort(stable=True)  # absent ones last
    ordered = torch.where(mask, values, 0.0)[order]
    present = mask.sum()
    means, costs = _segment_statistics(ordered, present)
    n_groups = min(groups, n_values)
    # best[k][j]: least cost of ordered[0..j] in k + 1 clusters; starts[k][j]: where the last begins.
    best, starts = [costs[0]], [torch.zeros(n_values, dtype=torch.long, device=values.device)]
    for _ in range(1, n_groups):
        before = torch.cat([best[-1].new_full((1,), float("inf")), best[-1][:-1]])
        value, start = (before[:, None] + costs).min(dim=0)
        best.append(value)
        starts.append(start)
    positions = torch.arange(n_values, device=values.device)
    used = present.clamp(max=n_groups) - 1  # index of the cluster count that is optimal
    end = present - 1
    ordered_means = torch.zeros_like(values)
    for k in reversed(range(n_groups)):
        active = k <= used
        safe_end = end.clamp(min=0).view(1)
        first = starts[k].gather(0, safe_end)[0] if k > 0 else torch.zeros_like(end)
        run = active & (positions >= first) & (positions <= end)
        mean = means.view(-1).gather(0, (first * n_values + safe_end[0]).view(1))[0]
        ordered_means = torch.where(run, mean, ordered_means)
        end = torch.where(active, first - 1, end)
    return torch.zeros_like(values).scatter(0, order, ordered_means) * mask


def _segment_statistics(ordered: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
    """``[T, T]`` means and within sums of squares of the runs ``ordered[i..j]`` (costs are
    inf where ``i > j`` or the run reaches past the ``present`` first values)."""
    n_values = ordered.shape[0]
    positions = torch.arange(n_values, device=ordered.device)
    first, last = positions[:, None], positions[None, :]
    inside = (first[..., None] <= positions) & (positions <= last[..., None])  # [i, j, p]
    counts = inside.sum(dim=-1).clamp(min=1)
    means = torch.where(inside, ordered, 0.0).sum(dim=-1) / counts
    squares = torch.where(inside, (ordered - means[..., None]) ** 2, 0.0).sum(dim=-1)
    valid = (first <= last) & (last < present)
    return means, torch.where(valid, squares, float("inf"))
