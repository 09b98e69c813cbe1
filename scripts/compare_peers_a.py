"""molmtl's FairGrad, UPGrad, DualProj, ConFIG and GradDrop side by side with their peers' code.

Feeds identical random ``[T, P]`` gradient matrices to ``molmtl.balancing`` and to torchjd
(UPGrad, DualProj, ConFIG, GradDrop, FairGrad) and LibMTL (FairGrad, GradDrop), and prints the
largest difference of the updates relative to the largest entry of the peer's update, over
seeds, for gradient norms spanning 10^2 and 10^6. For the solver-based methods it also prints
how far each solution is from its own problem's optimum. Peers are never a dependency of molmtl:
this runs in a scratch environment (LibMTL 1.1.5 on PyPI predates FairGrad, so its GitHub
version is installed beside it; LibMTL's package ``__init__`` needs torchvision, so its
weighting modules are loaded without it)::

    python -m venv /tmp/peers-a
    /tmp/peers-a/bin/pip install torch==2.13.0 numpy scipy
    /tmp/peers-a/bin/pip install --no-deps torchjd LibMTL qpsolvers quadprog
    /tmp/peers-a/bin/pip install --no-deps --target /tmp/peers-a-libmtl-github \\
        git+https://github.com/median-research-group/LibMTL
    /tmp/peers-a/bin/python scripts/compare_peers_a.py --libmtl-github /tmp/peers-a-libmtl-github
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import molmtl.balancing as mb

N_TASKS, N_PARAMS, SEEDS = 11, 200, range(10)
SPREADS = (2, 6)  # decades spanned by the task gradients' norms


def random_grads(seed: int, decades: float) -> torch.Tensor:
    """``[T, P]`` float64 gradients with a shared component and norms spanning ``10**decades``."""
    generator = torch.Generator().manual_seed(seed)
    shared = torch.randn(N_PARAMS, generator=generator, dtype=torch.float64)
    grads = torch.randn(N_TASKS, N_PARAMS, generator=generator, dtype=torch.float64)
    grads = grads + 0.2 * shared  # weak agreement: conflicts are frequent
    scales = torch.logspace(-decades / 2, decades / 2, N_TASKS, dtype=torch.float64)
    return grads * scales[torch.randperm(N_TASKS, generator=generator)][:, None]


def relative_difference(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return ((ours - theirs).abs().max() / theirs.abs().max()).item()


def libmtl_weighting(root: Path, name: str) -> type:
    """The class ``name`` of LibMTL's weighting module ``name`` under ``root`` (a site-packages or
    a checkout), loaded without running ``LibMTL/__init__.py``."""
    for module in [m for m in sys.modules if m == "LibMTL" or m.startswith("LibMTL.")]:
        del sys.modules[module]
    for package, path in [
        ("LibMTL", root / "LibMTL"),
        ("LibMTL.weighting", root / "LibMTL/weighting"),
    ]:
        stub = types.ModuleType(package)
        stub.__path__ = [str(path)]
        sys.modules[package] = stub
    return getattr(importlib.import_module(f"LibMTL.weighting.{name}"), name)


def libmtl_harness(weighting: type, grads: torch.Tensor):
    """A LibMTL weighting whose task losses ``g_t . theta`` have exactly the gradients ``grads``."""
    harness = weighting()
    harness.task_num, harness.device, harness.rep_grad = grads.shape[0], torch.device("cpu"), False
    theta = torch.nn.Parameter(torch.zeros(grads.shape[1], dtype=torch.float64))
    harness.get_share_params = lambda: [theta]
    harness.zero_grad_share_params = lambda: setattr(theta, "grad", None)
    return harness, grads @ theta


def libmtl_fairgrad(weighting: type, grads: torch.Tensor, alpha: float) -> torch.Tensor:
    """LibMTL's FairGrad weights ``w`` (no factor T, no clipping)."""
    harness, losses = libmtl_harness(weighting, grads)
    return torch.as_tensor(harness.backward(losses, FairGrad_alpha=alpha))


def libmtl_graddrop(weighting: type, grads: torch.Tensor, seed: int) -> torch.Tensor:
    """LibMTL's GradDrop (representation form) on a positive batch-1 representation, whose
    per-task gradients are ``grads``: the update is the representation's gradient."""
    harness, _ = libmtl_harness(weighting, grads)
    harness.rep_grad, harness.task_name = True, [f"task{t}" for t in range(grads.shape[0])]
    representation = torch.nn.Parameter(torch.ones(1, grads.shape[1], dtype=torch.float64))
    harness.rep = representation * 1.0
    harness.rep_tasks = {
        name: harness.rep.detach().clone().requires_grad_(True) for name in harness.task_name
    }
    losses = torch.stack(
        [
            (grad * harness.rep_tasks[name]).sum()
            for grad, name in zip(grads, harness.task_name, strict=True)
        ]
    )
    torch.manual_seed(seed)  # molmtl's GradDrop(seed=seed) draws the same first uniforms
    harness.backward(losses, leak=0.0)
    return representation.grad[0]


def fair_violation(grads: torch.Tensor, weights: torch.Tensor, alpha: float) -> float:
    """``max_i |(G w)_i w_i^(1/α) - 1|``: 0 at the FairGrad solution."""
    improvements = grads @ grads.T @ weights  # (G w)_i
    return (improvements * weights.clamp(min=1e-300) ** (1 / alpha) - 1).abs().max().item()


def report(label: str, compute: Callable[[torch.Tensor, int], float | tuple[float, ...]]) -> None:
    """Print the largest value(s) of ``compute(grads, seed)`` over the seeds, per spread."""
    cells = []
    for decades in SPREADS:
        values = np.array([np.atleast_1d(compute(random_grads(s, decades), s)) for s in SEEDS])
        cells.append(" / ".join(f"{v:.1e}" for v in values.max(axis=0)))
    print(f"| {label} | " + " | ".join(cells) + " |")


def torchjd_comparisons() -> None:
    from torchjd.aggregation import ConFIG, DualProj, GradDrop, UPGrad
    from torchjd.linalg import QuadprogProjector

    exact = QuadprogProjector(norm_eps=0.0, reg_eps=0.0)
    for name, ours, theirs in [("upgrad", mb.UPGrad, UPGrad), ("dualproj", mb.DualProj, DualProj)]:
        peer = theirs.__name__
        report(
            f"{name}(reg_eps=1e-4) vs torchjd {peer}() (its defaults: the same problem)",
            lambda g, s, o=ours, t=theirs: relative_difference(o(reg_eps=1e-4)(g), t()(g)),
        )
        report(
            f"{name}() vs torchjd {peer}(QuadprogProjector(reg_eps=0)) (the exact problem)",
            lambda g, s, o=ours, t=theirs: guarded(
                lambda: relative_difference(o()(g), t(projector=exact)(g))
            ),
        )
        report(
            f"{name}() vs torchjd {peer}() (each at its defaults)",
            lambda g, s, o=ours, t=theirs: relative_difference(o()(g), t()(g)),
        )
    report(
        "config vs torchjd ConFIG()", lambda g, s: relative_difference(mb.ConFIG()(g), ConFIG()(g))
    )

    def graddrop(grads: torch.Tensor, seed: int) -> float:
        torch.manual_seed(seed)  # torchjd draws from the global generator
        return relative_difference(mb.GradDrop(seed=seed)(grads), GradDrop()(grads))

    report("graddrop vs torchjd GradDrop()", graddrop)


def guarded(compute: Callable[[], float]) -> float:
    """``compute()``, or NaN where the peer's solver gives up."""
    try:
        return compute()
    except ValueError:
        return float("nan")


def fairgrad_weights(grads: torch.Tensor, alpha: float) -> torch.Tensor:
    """molmtl's FairGrad solution ``w`` (without the factor T and the clipping)."""
    aggregator = mb.FairGrad(alpha=alpha, max_norm=0.0)
    everything = torch.ones(grads.shape[0], dtype=torch.bool)
    return aggregator.weights(grads, torch.ones(grads.shape[0]), everything) / grads.shape[0]


def fairgrad_comparison(
    peer: str, peer_weights: Callable[[torch.Tensor, float], torch.Tensor], alpha: float
) -> None:
    def compare(grads: torch.Tensor, seed: int) -> tuple[float, float, float]:
        ours, theirs = fairgrad_weights(grads, alpha), peer_weights(grads, alpha)
        return (
            relative_difference(ours, theirs),
            fair_violation(grads, ours, alpha),
            fair_violation(grads, theirs, alpha),
        )

    report(f"fairgrad(alpha={alpha}) vs {peer}: weights; violation ours / theirs", compare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--libmtl-github", type=Path, help="LibMTL's GitHub version (FairGrad)")
    args = parser.parse_args()
    from torchjd.aggregation import FairGrad

    pypi_libmtl = Path(importlib.util.find_spec("LibMTL").submodule_search_locations[0]).parent
    print(f"T = {N_TASKS}, P = {N_PARAMS}, seeds {SEEDS.start}-{SEEDS.stop - 1}; the largest")
    print("|ours - theirs| / max |theirs| over the seeds (and the optimality gaps where given)\n")
    print("| comparison | norms spanning 10^2 | norms spanning 10^6 |\n|---|---|---|")
    torchjd_comparisons()
    torch.set_default_dtype(torch.float64)  # LibMTL builds its buffers in the default dtype
    graddrop = libmtl_weighting(pypi_libmtl, "GradDrop")
    report(
        "graddrop vs LibMTL 1.1.5 GradDrop (rep_grad=True, positive batch-1 representation)",
        lambda g, s: relative_difference(mb.GradDrop(seed=s)(g), libmtl_graddrop(graddrop, g, s)),
    )
    for alpha in (1.0, 2.0):
        fairgrad_comparison(
            "torchjd FairGrad", lambda g, a: FairGrad(alpha=a).gramian_weighting(g @ g.T), alpha
        )
        if args.libmtl_github is not None:
            weighting = libmtl_weighting(args.libmtl_github, "FairGrad")
            fairgrad_comparison(
                "LibMTL (GitHub) FairGrad",
                lambda g, a, w=weighting: libmtl_fairgrad(w, g, a),
                alpha,
            )


if __name__ == "__main__":
    main()
