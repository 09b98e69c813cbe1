"""The paper protocol on a time budget: per-epoch time of ew and dbmtl, and as many epochs as fit.

Prepares the ``qm9-paper`` run (3D MPNN, 110,831 / 10,000 / 10,000, batch 120) once per method
and trains the methods in turns, one epoch each, until the budget is spent, so both get the
same machine state. Prints every epoch's time and validation Δm% (against the published
single-task MAEs of the preset, the protocol's selection score), then the median epoch times
and their ratio. For a GPU: the whole run fits the budget given.

    python scripts/bench_paper_epochs.py --data ../shared/data/qm9 --device cuda --minutes 8
    python scripts/bench_paper_epochs.py --data tests/fixtures/qm9 --device cpu --minutes 0.5 \\
        --n-molecules 300   # the same code path in seconds (random split of a subset)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="QM9 folder or file")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--minutes", type=float, default=8.0, help="training budget, both methods")
    parser.add_argument("--methods", default="ew,dbmtl")
    parser.add_argument(
        "--n-molecules", type=int, default=None, help="a random subset instead of the full split"
    )
    return parser.parse_args()


def prepare(args: argparse.Namespace, method: str, out: str):
    from molmtl.training import TrainConfig, prepare_run, start

    overrides = {"data": args.data, "device": args.device, "balancer": method, "out": out}
    if args.n_molecules:
        overrides.update(n_molecules=args.n_molecules, split="random")
    config = TrainConfig.load(preset="qm9-paper", overrides=overrides)
    run = prepare_run(config)
    return run, start(run)


def main() -> None:
    import torch

    from molmtl.training.trainer import run_epoch

    args = parse_args()
    methods = args.methods.split(",")
    scratch = tempfile.mkdtemp(prefix="paper_epochs_")
    runs = {m: prepare(args, m, f"{scratch}/{m}") for m in methods}
    device = next(iter(runs.values()))[0].device
    print(f"device {device}; {len(runs[methods[0]][0].split.train)} training molecules")
    times: dict[str, list[float]] = {m: [] for m in methods}
    deadline = time.perf_counter() + 60 * args.minutes
    epoch = 0
    while time.perf_counter() < deadline:
        for method in methods:
            run, _ = runs[method]
            if device.type == "cuda":
                torch.cuda.synchronize()
            record = run_epoch(run, epoch)
            run.scheduler.step(record.val_score)
            run.balancer.end_epoch()
            times[method].append(record.seconds)
            print(
                f"epoch {record.epoch:>3} {method:<6} {record.seconds:7.2f} s  val Δm% {record.val_score:8.2f}"
            )
        epoch += 1
    medians = {m: statistics.median(v) for m, v in times.items()}
    for method, median in medians.items():
        print(f"{method}: median epoch {median:.2f} s over {len(times[method])} epochs")
    if len(methods) == 2:
        print(
            f"ratio {methods[1]} / {methods[0]}: {medians[methods[1]] / medians[methods[0]]:.2f}x"
        )


if __name__ == "__main__":
    main()
