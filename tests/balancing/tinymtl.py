"""A tiny hard-parameter-sharing model and batches for the balancing tests (no chemistry)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

import molmtl.balancing as mb


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


def is_gradient_method(name: str) -> bool:
    """Whether ``name`` balances per-task gradients (a :class:`GradientBalancer`)."""
    return isinstance(mb.get(name, **TinyMTL().balancer_kwargs()), mb.GradientBalancer)


def assert_same_state(got, expected) -> None:
    """Assert that two (nested) state dicts are equal, tensors bit for bit."""
    if isinstance(expected, Tensor):
        torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)
    elif isinstance(expected, dict):
        assert got.keys() == expected.keys()
        for key in expected:
            assert_same_state(got[key], expected[key])
    elif isinstance(expected, list | tuple):
        assert len(got) == len(expected)
        for got_item, expected_item in zip(got, expected, strict=True):
            assert_same_state(got_item, expected_item)
    else:
        assert got == expected
