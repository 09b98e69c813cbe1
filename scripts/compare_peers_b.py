"""molmtl's STCH, ExcessMTL, MoCo and SDMGrad side by side with LibMTL's, on identical inputs.

A benchmark, not a test: the peer is never a dependency of molmtl. Run it in a scratch venv::

    python -m venv /tmp/peers-b && /tmp/peers-b/bin/pip install torch==2.13.0 numpy scipy \\
        && /tmp/peers-b/bin/pip install --no-deps LibMTL
    git --git-dir=<LibMTL clone>/.git archive HEAD LibMTL | tar -x -C /tmp/libmtl-github
    PYTHONPATH=. /tmp/peers-b/bin/python scripts/compare_peers_b.py --libmtl /tmp/libmtl-github

PyPI's LibMTL (1.1.5) has none of the four methods, so their modules are loaded from a GitHub
checkout (``--libmtl``: the directory holding ``LibMTL/weighting/``), without the package's
``__init__`` (which needs cvxpy and qpsolvers); ``np.alltrue``, which LibMTL's SDMGrad calls and
NumPy 2 removed, is aliased to ``np.all``. Both sides train two copies of one small model
(a shared trunk, one linear head per task, targets on scales 1, 10, 100 unless said) in float64
on the same batches; molmtl's copy trains (SGD) and LibMTL's is reset to its parameters before
every step, so each step compares both at the same point (with the peer's own state). Each step
prints the largest difference of the shared and of the head gradients, relative to the largest
gradient entry, and of the task weights.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

import molmtl.balancing as mb

N_TASKS = 3


class Model(nn.Module):
    def __init__(self, scales: tuple[float, ...]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.scales = torch.tensor(scales)
        self.trunk = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh())
        self.heads = nn.ModuleList(nn.Linear(16, 1) for _ in range(N_TASKS))

    def losses(self, batch: int) -> torch.Tensor:
        """``[T]`` mean squared errors on the seeded batch ``batch``."""
        generator = torch.Generator().manual_seed(batch)
        x = torch.randn(32, 5, generator=generator)
        y = torch.randn(32, N_TASKS, generator=generator) * self.scales
        hidden = self.trunk(x)
        predictions = torch.cat([head(hidden) for head in self.heads], dim=1)
        return ((predictions - y) ** 2).mean(dim=0)

    def grads(self) -> tuple[torch.Tensor, torch.Tensor]:
        def flat(module: nn.Module) -> torch.Tensor:
            return torch.cat([p.grad.reshape(-1) for p in module.parameters()])

        return flat(self.trunk), flat(self.heads)


def load_weighting(libmtl: Path, name: str) -> type:
    """The class ``name`` of ``LibMTL/weighting/<name>.py``, skipping the package ``__init__``."""
    if not hasattr(np, "alltrue"):  # LibMTL's SDMGrad calls np.alltrue, gone since NumPy 2.0
        np.alltrue = np.all
    for package, folder in (("LibMTL", "LibMTL"), ("LibMTL.weighting", "LibMTL/weighting")):
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(libmtl / folder)]
            sys.modules[package] = module
    return getattr(importlib.import_module(f"LibMTL.weighting.{name}"), name)


def peer_of(weighting: type, model: Model) -> nn.Module:
    """A LibMTL weighting mixed into ``model`` the way LibMTL's trainer does it."""

    class Peer(weighting):
        def __init__(self) -> None:
            super().__init__()
            self.task_num, self.device, self.rep_grad, self.epoch = N_TASKS, "cpu", False, 0
            self.encoder = model.trunk

        def get_share_params(self):
            return model.trunk.parameters()

        def zero_grad_share_params(self):
            model.trunk.zero_grad(set_to_none=False)

    peer = Peer()
    peer.init_param()
    return peer


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-300))


def compare(
    title: str,
    balancer_of: Callable[[Model], mb.Balancer],
    peer_step: Callable[[nn.Module, torch.Tensor], torch.Tensor],
    weighting: type,
    *,
    epochs: int = 1,
    steps: int = 8,
    ours_weights: Callable[[mb.Balancer, dict], torch.Tensor] = lambda b, d: d["weights"],
    scales: tuple[float, ...] = (1.0, 10.0, 100.0),
) -> None:
    """Train for ``epochs`` x ``steps`` steps and print each step's differences."""
    ours, theirs = Model(scales), Model(scales)
    balancer, peer = balancer_of(ours), peer_of(weighting, theirs)
    optimizer = torch.optim.SGD(ours.parameters(), lr=1e-3)
    print(f"\n{title}\n  step  shared-grad  head-grad  weights")
    worst = [0.0, 0.0, 0.0]
    for epoch in range(epochs):
        peer.epoch = epoch
        for step in range(steps):
            batch = epoch * steps + step
            theirs.load_state_dict(ours.state_dict())
            for model in (ours, theirs):
                model.zero_grad()
            diagnostics = balancer.backward(ours.losses(batch))
            their_weights = peer_step(peer, theirs.losses(batch))
            shared, heads = ours.grads()
            their_shared, their_heads = theirs.grads()
            weights = ours_weights(balancer, diagnostics)
            row = [relative(shared, their_shared), relative(heads, their_heads)]
            row.append(float((weights - their_weights).abs().max()))
            worst = [max(w, r) for w, r in zip(worst, row, strict=True)]
            print(f"  {batch:4d}  {row[0]:11.2e}  {row[1]:9.2e}  {row[2]:7.2e}")
            optimizer.step()
        balancer.end_epoch()
    print(f"  max   {worst[0]:11.2e}  {worst[1]:9.2e}  {worst[2]:7.2e}")


def stch_peer_step(peer, losses):
    peer.backward(losses, STCH_mu=1.0, STCH_warmup_epoch=4)
    return torch.ones(N_TASKS)  # LibMTL reports no weights for STCH


def stch_weights(balancer, diagnostics):
    return torch.ones(N_TASKS)


def excessmtl_peer_step(peer, losses):
    return torch.as_tensor(peer.backward(losses, robust_step_size=1e-2))


def moco_peer_step(peer, losses):
    options = dict(MoCo_beta=0.5, MoCo_beta_sigma=0.5, MoCo_gamma=0.1, MoCo_gamma_sigma=0.5)
    return torch.as_tensor(peer.backward(losses, MoCo_rho=0.0, **options))


def sdmgrad_peer_step(niter: int, gaps: list[float]):
    """LibMTL's SDMGrad step; appends to ``gaps`` how much larger its simplex objective
    ``|g_w + lamda g_0|^2`` is than at molmtl's exact solution (relative)."""

    def step(peer, losses):
        params = list(peer.get_share_params())
        rows = [torch.autograd.grad(loss, params, retain_graph=True) for loss in losses]
        grads = torch.stack([torch.cat([g.reshape(-1) for g in row]) for row in rows])
        # One batch: the paper's three independent samples are all this batch's gradients.
        peer.backward(torch.stack([losses] * 3), SDMGrad_lamda=0.3, SDMGrad_niter=niter)
        exact = mb.SDMGrad().weights(grads, losses.detach(), torch.ones(N_TASKS, dtype=torch.bool))
        objectives = [
            (w @ grads + 0.3 * grads.mean(dim=0)).square().sum()
            for w in (peer.w, exact * 1.3 - 0.3 / N_TASKS)
        ]
        gaps.append(float(objectives[0] / objectives[1] - 1))
        return (peer.w + 0.3 / N_TASKS) / 1.3

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--libmtl", type=Path, required=True, help="a LibMTL GitHub checkout")
    libmtl = parser.parse_args().libmtl
    torch.set_default_dtype(torch.float64)  # LibMTL allocates its buffers in the default dtype

    def balancer(name: str, **options):
        return lambda model: mb.get(
            name, shared=model.trunk.parameters(), task_specific=model.heads.parameters(),
            n_tasks=N_TASKS, **options,
        )  # fmt: skip

    compare(
        "STCH (mu=1; LibMTL STCH_warmup_epoch=4 = molmtl warmup_epochs=5; 7 epochs of 3 steps)",
        balancer("stch"), stch_peer_step, load_weighting(libmtl, "STCH"),
        epochs=7, steps=3, ours_weights=stch_weights,
    )  # fmt: skip
    compare(
        "ExcessMTL (step_size = robust_step_size = 1e-2)",
        balancer("excessmtl"), excessmtl_peer_step, load_weighting(libmtl, "ExcessMTL"),
    )  # fmt: skip
    compare(
        "ExcessMTL with step_size = robust_step_size = 1 (weights move visibly)",
        balancer("excessmtl", step_size=1.0),
        lambda peer, losses: torch.as_tensor(peer.backward(losses, robust_step_size=1.0)),
        load_weighting(libmtl, "ExcessMTL"),
    )  # fmt: skip
    for scales in ((1.0, 10.0, 100.0), (1.0, 1.0, 1.0)):
        compare(
            f"MoCo (LibMTL defaults: beta=0.5, beta_sigma=0.5, gamma=0.1, gamma_sigma=0.5, "
            f"rho=0; target scales {scales})",
            balancer("moco"), moco_peer_step, load_weighting(libmtl, "MoCo"),
            ours_weights=lambda b, d: b.aggregator.weights_, scales=scales,
        )  # fmt: skip
    for scales in ((1.0, 10.0, 100.0), (1.0, 1.0, 1.0)):
        for niter in (20, 2000):
            gaps: list[float] = []
            compare(
                f"SDMGrad (lamda=0.3, target scales {scales}; LibMTL's {niter} projected SGD "
                "steps vs the exact solve; LibMTL's heads get the gradient of all three "
                "samples, 3x)",
                balancer("sdmgrad"), sdmgrad_peer_step(niter, gaps),
                load_weighting(libmtl, "SDMGrad"), scales=scales,
            )  # fmt: skip
            print(
                f"  LibMTL's objective above the exact optimum: min {min(gaps):.2e}, "
                f"max {max(gaps):.2e} (relative)"
            )


if __name__ == "__main__":
    main()
