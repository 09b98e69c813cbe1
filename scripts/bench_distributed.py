"""What data-parallel molmtl costs against plain DDP, with gloo ranks on this machine.

Gradient methods reduce the ``[T, P]`` per-task gradients (T × P values per step) instead of the
``[P]`` summed gradient that ``DistributedDataParallel`` reduces, in buckets overlapped with the
backward pass. This script starts ``--ranks`` gloo processes on 127.0.0.1, each with half of
every batch of an MLP stand-in (64 → H → H → H trunk, T linear heads), and times one training
step of each variant round-robin after a warm-up (medians over repeats, wall clock):

- ``ddp-ew``: the model wrapped in ``DistributedDataParallel``, ``losses.sum()`` backward;
- ``molmtl-ew``: molmtl's loss-weighting path (global losses, one flat gradient bucket after
  the backward pass);
- ``molmtl-dbmtl``: DB-MTL with ``distributed=True`` (losses, then ``[T, P]`` reduced);
- ``local-ew`` / ``local-dbmtl``: the same steps without any reduction (the compute floor);
- ``dbmtl-overlap``: the per-task gradients reduced row by row with ``async_op`` while the next
  task's backward runs, then aggregated (would overlapping pay here?).

And the bare collectives: ``all_reduce`` of P values, of T × P in one call, and of T × P as T
asynchronous rows. Example::

    python scripts/bench_distributed.py --hidden 128 --tasks 11 --batch-size 64 --repeats 30
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import molmtl.balancing as mb
from molmtl.training import DataParallel


def build_model(hidden: int, n_tasks: int) -> nn.Sequential:
    """The MLP stand-in, initialised alike on every rank."""
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for n_in in (64, hidden, hidden):
        layers += [nn.Linear(n_in, hidden), nn.ReLU()]
    return nn.Sequential(nn.Sequential(*layers), nn.Linear(hidden, n_tasks))


def make_step(
    name: str, args: argparse.Namespace, data_parallel: DataParallel
) -> Callable[[], None]:
    """One training step of the variant ``name`` on this rank's half batch."""
    model = build_model(args.hidden, args.tasks)
    trunk, heads = model
    generator = torch.Generator().manual_seed(1 + data_parallel.rank)
    x = torch.randn(args.batch_size // data_parallel.world_size, 64, generator=generator)
    y = torch.randn(len(x), args.tasks, generator=generator)
    method = "dbmtl" if "dbmtl" in name else "ew"
    options = {"distributed": True} if name == "molmtl-dbmtl" else {}
    balancer = mb.get(
        method,
        shared=trunk.parameters(),
        task_specific=heads.parameters(),
        n_tasks=args.tasks,
        **options,
    )
    forward = nn.parallel.DistributedDataParallel(model) if name == "ddp-ew" else model
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        prediction = forward(x)
        if name.startswith("molmtl"):
            data_parallel.backward(balancer, prediction, y)
        elif name == "dbmtl-overlap":
            overlapped_dbmtl(balancer, ((prediction - y) ** 2).mean(dim=0), data_parallel)
        elif name == "ddp-ew":
            ((prediction - y) ** 2).mean(dim=0).sum().backward()
        else:
            balancer.backward(((prediction - y) ** 2).mean(dim=0))
        optimizer.step()

    return step


def overlapped_dbmtl(
    balancer: mb.GradientBalancer, losses: Tensor, data_parallel: DataParallel
) -> None:
    """DB-MTL's step with row t's reduction in flight while task t + 1's backward runs.

    Args:
        losses: ``[T]`` this rank's losses (equal shards: the mean over ranks is the global loss).
    """
    stats = data_parallel.sum_(losses.detach().clone()) / data_parallel.world_size
    surrogate = losses / (data_parallel.world_size * (stats + balancer.eps))
    shared = balancer.shared_params
    grads = losses.new_empty(len(losses), sum(p.numel() for p in shared))
    pending = []
    for task in range(len(losses)):
        row = torch.autograd.grad(surrogate[task], shared, retain_graph=True)
        torch.cat([g.reshape(-1) for g in row], out=grads[task])
        pending.append(dist.all_reduce(grads[task], async_op=True))
    head_grads = torch.autograd.grad(surrogate.sum(), balancer.task_params)
    for work in pending:
        work.wait()
    update, _ = balancer.aggregator.aggregate(
        grads, stats, torch.ones_like(stats, dtype=torch.bool)
    )
    for param, grad in zip(shared, update.split([p.numel() for p in shared]), strict=True):
        param.grad = grad.view_as(param)
    for param, grad in zip(balancer.task_params, head_grads, strict=True):
        param.grad = data_parallel.sum_(grad.clone())


def collectives(args: argparse.Namespace, n_shared: int) -> dict[str, Callable[[], None]]:
    """The bare reductions: P values, T × P in one call, T × P as T asynchronous rows."""
    flat, matrix = torch.randn(n_shared), torch.randn(args.tasks, n_shared)

    def rows() -> None:
        for work in [dist.all_reduce(row, async_op=True) for row in matrix]:
            work.wait()

    return {
        "all_reduce[P]": lambda: dist.all_reduce(flat),
        "all_reduce[TxP]": lambda: dist.all_reduce(matrix),
        "all_reduce[TxP rows async]": rows,
    }


VARIANTS = ["ddp-ew", "molmtl-ew", "local-ew", "molmtl-dbmtl", "local-dbmtl", "dbmtl-overlap"]


def time_round_robin(
    steps: dict[str, Callable[[], None]], repeats: int, warmup: int
) -> dict[str, float]:
    """Median milliseconds of each step, timed one of each per repeat (ranks in lockstep)."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for repeat in range(warmup + repeats):
        for name, step in steps.items():
            dist.barrier()
            started = time.perf_counter()
            step()
            dist.barrier()
            if repeat >= warmup:
                times[name].append(1000 * (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in times.items()}


def rank_main(rank: int, args: argparse.Namespace, port: int) -> None:
    torch.set_num_threads(args.threads)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=args.ranks
    )
    data_parallel = DataParallel(rank, args.ranks)
    steps = {name: make_step(name, args, data_parallel) for name in VARIANTS}
    n_shared = sum(p.numel() for p in build_model(args.hidden, args.tasks)[0].parameters())
    steps.update(collectives(args, n_shared))
    medians = time_round_robin(steps, args.repeats, args.warmup)
    if rank == 0:
        report(medians, args, n_shared)
    dist.barrier()
    dist.destroy_process_group()


def report(medians: dict[str, float], args: argparse.Namespace, n_shared: int) -> None:
    print(
        f"{args.ranks} gloo ranks, T = {args.tasks}, P = {n_shared} shared, "
        f"global batch {args.batch_size}, {args.threads} thread(s) per rank"
    )
    print("| step | ms (median) |")
    print("|---|---|")
    for name, value in medians.items():
        print(f"| {name} | {value:.3f} |")
    ratios = {
        "molmtl-ew / ddp-ew": ("molmtl-ew", "ddp-ew"),
        "molmtl-dbmtl / ddp-ew": ("molmtl-dbmtl", "ddp-ew"),
        "molmtl-dbmtl / local-dbmtl": ("molmtl-dbmtl", "local-dbmtl"),
        "ddp-ew / local-ew": ("ddp-ew", "local-ew"),
        "dbmtl-overlap / molmtl-dbmtl": ("dbmtl-overlap", "molmtl-dbmtl"),
        "all_reduce[TxP] / all_reduce[P]": ("all_reduce[TxP]", "all_reduce[P]"),
        "TxP rows async / TxP one call": ("all_reduce[TxP rows async]", "all_reduce[TxP]"),
    }
    print("| ratio | value |")
    print("|---|---|")
    for label, (a, b) in ratios.items():
        print(f"| {label} | {medians[a] / medians[b]:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--tasks", type=int, default=11)
    parser.add_argument("--batch-size", type=int, default=64, help="global batch")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(rank_main, args=(args, port), nprocs=args.ranks, join=True)


if __name__ == "__main__":
    main()
