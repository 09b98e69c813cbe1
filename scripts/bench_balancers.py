"""Time one training step of every balancing method, side by side, as ratios to equal weighting.

One step = forward + ``balancer.backward(losses)`` + ``optimizer.step()``. Methods are timed
round-robin (one step of each per repeat) after a warm-up, so that load on a shared machine
hits them alike; each reports the median over repeats. Besides the registry it times:

- ``loop-T-backward``: a plain loop of T ``losses[t].backward(retain_graph=True)`` calls (the
  arithmetic floor of any method that needs T per-task gradients);
- ``dbmtl[sequential]`` / ``dbmtl[batched]`` (and the same for ``gradmax``): both per-task
  gradient backends explicitly (the registry's ``dbmtl`` uses the device's default).

Examples::

    python scripts/bench_balancers.py --device cpu --model mlp --repeats 20
    python scripts/bench_balancers.py --device cuda --model qm9-mpnn --repeats 50

Adding a model means adding one ``build_*`` function to ``MODELS``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import molmtl.balancing as mb


@dataclass
class Workload:
    """A model, how to get its ``[T]`` losses on a fixed batch, and its parameter groups."""

    model: nn.Module
    losses: Callable[[], Tensor]
    shared: list[nn.Parameter]
    task_specific: list[nn.Parameter]


def build_mlp(n_tasks: int, batch_size: int, device: torch.device) -> Workload:
    """A stand-in: 3-layer shared MLP trunk (64 → 256 → 256 → 256) and T linear heads."""
    trunk = nn.Sequential(
        nn.Linear(64, 256),
        nn.ReLU(),
        nn.Linear(256, 256),
        nn.ReLU(),
        nn.Linear(256, 256),
        nn.ReLU(),
    )
    heads = nn.Linear(256, n_tasks)  # row t is head t
    model = nn.Sequential(trunk, heads).to(device)
    x = torch.randn(batch_size, 64, device=device)
    y = torch.randn(batch_size, n_tasks, device=device)
    return Workload(
        model,
        lambda: ((model(x) - y) ** 2).mean(dim=0),
        list(trunk.parameters()),
        list(heads.parameters()),
    )


def build_qm9_mpnn(
    n_tasks: int, batch_size: int, device: torch.device, complete_graph: bool = False
) -> Workload:
    """The benchmark MPNN (molmtl.models, 3D feature sizes) on random QM9-sized graphs.

    Each graph has 18 nodes (QM9's mean with hydrogens) and either 38 random directed edges
    (about its bonds) or all 306 ordered pairs (the 3D featurizer's complete graph).
    """
    from molmtl.data import PackedGraphs
    from molmtl.models import build_model

    node_dim, edge_dim, n_nodes = 11, 5, 18
    generator = torch.Generator().manual_seed(0)
    if complete_graph:
        pairs = torch.cartesian_prod(torch.arange(n_nodes), torch.arange(n_nodes)).T
        one_graph = pairs[:, pairs[0] != pairs[1]]
        edge_index = one_graph.repeat(1, batch_size)
    else:
        edge_index = torch.randint(n_nodes, (2, 38 * batch_size), generator=generator)
    n_edges = edge_index.shape[1] // batch_size
    counts = torch.arange(batch_size + 1)
    graphs = PackedGraphs(
        x=torch.randn(n_nodes * batch_size, node_dim, generator=generator),
        edge_index=edge_index,
        edge_attr=torch.randn(n_edges * batch_size, edge_dim, generator=generator),
        node_ptr=counts * n_nodes,
        edge_ptr=counts * n_edges,
    ).to(device)
    batch = graphs.batch(torch.arange(batch_size))
    model = build_model({"encoder": "mpnn"}, node_dim=node_dim, edge_dim=edge_dim, n_tasks=n_tasks)
    model = model.to(device)
    y = torch.randn(batch_size, n_tasks, device=device)
    return Workload(
        model,
        lambda: ((model(batch) - y) ** 2).mean(dim=0),
        list(model.shared_parameters()),
        list(model.task_parameters()),
    )


def build_qm9_2d(n_tasks: int, batch_size: int, device: torch.device) -> Workload:
    """The default model (2D featurizer, GINE with molmtl's defaults) on a batch of real QM9
    molecules (the test fixture's first ``batch_size``, at most 1,200)."""
    import pandas as pd

    from molmtl import featurizers
    from molmtl.models import build_model

    fixture = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "qm9" / "qm9.csv.xz"
    smiles = pd.read_csv(fixture)["smiles"].head(batch_size).tolist()
    featurizer = featurizers.get("2d")
    graphs = featurizer.featurize_many(smiles).graphs.to(device)
    batch = graphs.batch(torch.arange(len(smiles), device=device))
    model = build_model(
        {"encoder": "gine"},
        node_dim=featurizer.node_dim,
        edge_dim=featurizer.edge_dim,
        n_tasks=n_tasks,
    ).to(device)
    y = torch.randn(len(smiles), n_tasks, device=device)
    return Workload(
        model,
        lambda: ((model(batch) - y) ** 2).mean(dim=0),
        list(model.shared_parameters()),
        list(model.task_parameters()),
    )


MODELS: dict[str, Callable[[int, int, torch.device], Workload]] = {
    "mlp": build_mlp,
    "qm9-2d": build_qm9_2d,
    "qm9-mpnn": build_qm9_mpnn,
    "qm9-mpnn-complete": partial(build_qm9_mpnn, complete_graph=True),
}


def balancer_step(workload: Workload, balancer: mb.Balancer, optimizer: torch.optim.Optimizer):
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        balancer.backward(workload.losses())
        optimizer.step()

    return step


def loop_step(workload: Workload, optimizer: torch.optim.Optimizer):
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        losses = workload.losses()
        for loss in losses:
            loss.backward(retain_graph=True)
        optimizer.step()

    return step


def build_steps(args: argparse.Namespace, device: torch.device) -> dict[str, Callable[[], None]]:
    steps = {}

    def add(label: str, name: str | None, **options: object) -> None:
        torch.manual_seed(0)
        workload = MODELS[args.model](args.tasks, args.batch_size, device)
        optimizer = torch.optim.Adam(workload.model.parameters(), lr=1e-4)
        if name is None:
            steps[label] = loop_step(workload, optimizer)
            return
        balancer = mb.get(
            name,
            shared=workload.shared,
            task_specific=workload.task_specific,
            n_tasks=args.tasks,
            **options,
        )
        steps[label] = balancer_step(workload, balancer, optimizer)

    add("ew", "ew")
    add("loop-T-backward", None)
    for name in ("dbmtl", "gradmax"):
        for backend in mb.BACKENDS:
            add(f"{name}[{backend}]", name, backend=backend)
    methods = args.methods or [n for n in mb.available() if not n.endswith("+log")]
    for name in methods:
        if name != "ew":
            try:
                add(name, name)
            except ImportError as error:
                print(f"skipping {name}: {error}", file=sys.stderr)
    return steps


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def timed(step: Callable[[], None], device: torch.device, clock: Callable[[], float]) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = clock()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", choices=sorted(MODELS), default="mlp")
    parser.add_argument("--tasks", type=int, default=11, help="T (QM9 benchmark: 11)")
    parser.add_argument("--batch-size", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--methods", nargs="*", help="registry names (default: all but +log)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="'cpu' (process CPU time) resists other load on a shared CPU; use 'wall' on a GPU",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    steps = build_steps(args, device)
    for step in steps.values():
        for _ in range(args.warmup):
            step()
    times: dict[str, list[float]] = {label: [] for label in steps}
    for _ in range(args.repeats):
        for label, step in steps.items():
            times[label].append(timed(step, device, CLOCKS[args.clock]))

    medians = {label: statistics.median(values) for label, values in times.items()}
    print(
        f"model={args.model} device={device} T={args.tasks} batch={args.batch_size} "
        f"repeats={args.repeats} threads={torch.get_num_threads()} clock={args.clock} default backend="
        f"{mb.DEFAULT_BACKEND.get(device.type, 'sequential')}"
    )
    print(f"{'method':<22}{'median ms':>11}{'x ew':>8}{'x loop':>8}")
    for label, median in medians.items():
        print(
            f"{label:<22}{median * 1e3:>11.2f}{median / medians['ew']:>8.2f}"
            f"{median / medians['loop-T-backward']:>8.2f}"
        )


if __name__ == "__main__":
    main()
