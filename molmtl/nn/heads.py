"""One prediction head per task (hard parameter sharing), evaluated for all tasks at once."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class TaskHeads(nn.Module):
    """T independent heads on a shared embedding, stored as stacked weights.

    Head ``t`` is ``Linear(in_dim, 1)``, or ``Linear(in_dim, hidden_dim) → ReLU → Linear(hidden_dim, 1)``
    when ``hidden_dim`` is given. Row ``t`` of every parameter belongs to task ``t`` only, so the
    gradient of task ``t``'s loss touches nothing else; stacking avoids T small kernels per step.

    Args:
        in_dim: width of the shared embedding.
        n_tasks: T.
        hidden_dim: hidden width of each head, or None for linear heads.
    """

    def __init__(self, in_dim: int, n_tasks: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        if hidden_dim is not None and (
            isinstance(hidden_dim, bool) or not isinstance(hidden_dim, int) or hidden_dim < 1
        ):
            raise ValueError(f"head_hidden_dim must be None or an int >= 1, got {hidden_dim!r}")
        if n_tasks < 1:
            raise ValueError(f"n_tasks must be >= 1, got {n_tasks}")
        self.n_tasks = n_tasks
        self.hidden_dim = hidden_dim
        if hidden_dim is None:
            self.weight = nn.Parameter(_uniform((n_tasks, in_dim), fan_in=in_dim))
            self.bias = nn.Parameter(_uniform((n_tasks,), fan_in=in_dim))
        else:
            self.hidden_weight = nn.Parameter(
                _uniform((n_tasks, in_dim, hidden_dim), fan_in=in_dim)
            )
            self.hidden_bias = nn.Parameter(_uniform((n_tasks, hidden_dim), fan_in=in_dim))
            self.weight = nn.Parameter(_uniform((n_tasks, hidden_dim), fan_in=hidden_dim))
            self.bias = nn.Parameter(_uniform((n_tasks,), fan_in=hidden_dim))

    def forward(self, embedding: Tensor) -> Tensor:
        """``[B, in_dim]`` embeddings → ``[B, T]`` predictions."""
        if self.hidden_dim is None:
            return embedding @ self.weight.T + self.bias
        hidden = torch.relu(
            torch.einsum("bi,tih->bth", embedding, self.hidden_weight) + self.hidden_bias
        )  # [B, T, hidden_dim]
        return torch.einsum("bth,th->bt", hidden, self.weight) + self.bias


def _uniform(shape: tuple[int, ...], *, fan_in: int) -> Tensor:
    # nn.Linear's default initialisation, so a head matches a per-task nn.Linear in distribution.
    bound = 1.0 / math.sqrt(fan_in)
    return torch.empty(shape).uniform_(-bound, bound)
