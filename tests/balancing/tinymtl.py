"""A tiny hard-parameter-sharing model and batches for the balancing tests (no chemistry)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import Tensor, nn

from molmtl.balancing._registry import METHODS


class TinyMTL(nn.Module):
    """A shared two-layer trunk and one linear head per task."""

    def __init__(self, n_tasks: int = 3, in_dim: int = 5, hidden: int = 8, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.trunk = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh()
        )
        self.heads = nn.ModuleList(nn.Linear(hidden, 1) for _ in range(n_tasks))

    def forward(self, x: Tensor) -> Tensor:
        """``[B, in_dim]`` -> ``[B, T]``."""
        hidden = self.trunk(x)
        return torch.cat([head(hidden) for head in self.heads], dim=1)

    def losses(self, x: Tensor, y: Tensor) -> Tensor:
        """``[T]`` per-task mean squared errors."""
        return ((self(x) - y) ** 2).mean(dim=0)

    def balancer_kwargs(self) -> dict:
        return {
            "shared": self.trunk.parameters(),
            "task_specific": self.heads.parameters(),
            "n_tasks": len(self.heads),
        }

    def shared_grad(self) -> Tensor:
        return torch.cat([p.grad.reshape(-1) for p in self.trunk.parameters()])

    def task_grad(self) -> Tensor:
        return torch.cat([p.grad.reshape(-1) for p in self.heads.parameters()])


def make_batch(
    n_tasks: int = 3,
    n: int = 16,
    in_dim: int = 5,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Inputs ``[n, in_dim]`` and targets ``[n, T]`` on very different scales per task."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, in_dim, generator=generator, dtype=dtype)
    scales = 10.0 ** torch.arange(n_tasks, dtype=dtype)
    y = torch.randn(n, n_tasks, generator=generator, dtype=dtype) * scales
    return x, y


def require_method(name: str) -> None:
    """Skip the calling test if ``name``'s module has not been written yet."""
    module = METHODS[name.partition("+")[0]].module
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} (method {name!r}) does not exist yet")
