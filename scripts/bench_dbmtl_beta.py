"""Why DB-MTL's gradient smoothing (beta = 0.9) hurts short runs: Adam's effective step, measured.

DB-MTL writes ``Σ_t α_t ĝ_t`` into the shared gradients, where ``ĝ_t`` is an exponential moving
average (β) of the per-task gradients of log L_t. Adam then divides its own moving average of
that gradient by the root of its second moment. The script trains the same model from the
same initial weights with several settings and records, for every step, on the shared
parameters:

* ``step/lr``: RMS of the parameter change divided by the learning rate. For Adam this is the
  RMS of ``m̂ / (√v̂ + ε)``, which is near 1 for a consistent gradient and small for a noisy one;
* ``cos(update, g)``: cosine between the shared gradient the optimizer received and the
  current batch's plain DB-MTL direction ``Σ_t α_t g_t`` (how stale the direction is);

and the validation score (mean normalized MAE) per epoch. Then two tests of the causes:
beta = 0.9 with the learning rate divided by the measured step ratio (is it the larger
effective step?), and beta = 0.9 and beta = 0 with Adam's own momentum off (beta1 = 0: is it
the smoothing stacked on Adam's momentum, two moving averages in series?).

    python scripts/bench_dbmtl_beta.py --data ../shared/data/qm9 --n-molecules 10000 --epochs 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="QM9 folder or file")
    parser.add_argument("--n-molecules", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--momentum-only", action="store_true", help="run only the two Adam beta1 = 0 settings"
    )
    return parser.parse_args()


def config_for(args: argparse.Namespace, beta: float, lr: float, out: str):
    from molmtl.training import TrainConfig

    return TrainConfig.load(
        preset="qm9-quick",
        overrides={
            "data": args.data,
            "n_molecules": args.n_molecules,
            "epochs": args.epochs,
            "lr": lr,
            "balancer_options": {"beta": beta},
            "device": args.device,
            "progress": False,
            "out": out,
        },
    )


def shared_vector(parameters: list[torch.Tensor], grads: bool = False) -> torch.Tensor:
    return torch.cat([(p.grad if grads else p).detach().reshape(-1) for p in parameters])


def current_direction(run, losses: torch.Tensor, shared: list[torch.Tensor]) -> torch.Tensor:
    """``Σ_t α_t g_t`` of this batch without smoothing (DB-MTL with beta = 0), ``[P]``."""
    rows = []
    for loss in torch.log(losses + 1e-8):
        grads = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    gradients = torch.stack(rows)
    norms = gradients.norm(dim=1)
    return ((norms.max() / (norms + 1e-8))[:, None] * gradients).sum(0)


def train_and_measure(run) -> dict[str, list[float]]:
    """Train ``run`` with per-step measurements; returns per-step and per-epoch series."""
    from molmtl.training import start
    from molmtl.training.evaluation import mean_absolute_errors
    from molmtl.training.metrics import masked_mse

    start(run)
    shared = [p for p in run.model.shared_parameters() if p.requires_grad]
    series: dict[str, list[float]] = {"step_over_lr": [], "cosine": [], "val_score": []}
    for _ in range(run.config.epochs):
        run.model.train()
        order = run.split.train[
            torch.randperm(len(run.split.train), generator=run.shuffle_generator)
        ]
        for device_batch, batch in run.graphs.batches(order, run.config.batch_size):
            run.optimizer.zero_grad(set_to_none=True)
            losses, mask = masked_mse(run.forward(batch).float(), run.standardized[device_batch])
            plain = current_direction(run, losses, shared)
            before = shared_vector(shared)
            run.balancer.backward(losses, mask)
            applied = shared_vector(shared, grads=True)
            run.optimizer.step()
            change = shared_vector(shared) - before
            lr = run.optimizer.param_groups[0]["lr"]
            series["step_over_lr"].append(float(change.square().mean().sqrt() / lr))
            series["cosine"].append(float(torch.nn.functional.cosine_similarity(applied, plain, 0)))
        run.model.eval()
        mae = mean_absolute_errors(
            run.predict, run.graphs, run.targets, run.split.val, batch_size=2000
        ).cpu()
        score = run.scorer.score(mae)
        run.scheduler.step(score)
        run.balancer.end_epoch()
        series["val_score"].append(score)
    return series


def summarize(name: str, series: dict[str, list[float]]) -> float:
    steps = series["step_over_lr"]
    third = len(steps) // 3
    print(
        f"{name:<28} step/lr median: first third {statistics.median(steps[:third]):.3f}, "
        f"last third {statistics.median(steps[-third:]):.3f}; "
        f"cos(update, current) median {statistics.median(series['cosine']):.3f}; "
        f"val score by epoch: {' '.join(f'{s:.3f}' for s in series['val_score'])}"
    )
    return statistics.median(steps)


def with_adam_beta1(run, beta1: float):
    """Replace the run's Adam (and its scheduler) by one with momentum ``beta1``."""
    config = run.config
    run.optimizer = torch.optim.Adam(run.model.parameters(), lr=config.lr, betas=(beta1, 0.999))
    run.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        run.optimizer, factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr
    )
    return run


def main() -> None:
    from molmtl.training import prepare_run

    args = parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"qm9-quick model, DB-MTL, {args.n_molecules} molecules, {args.epochs} epochs, lr {args.lr}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        if not args.momentum_only:
            step_size_test(args, scratch)
        # the smoothing is a second momentum in series with Adam's: without Adam's, one remains
        for beta in (0.9, 0.0):
            run = prepare_run(config_for(args, beta, args.lr, f"{scratch}/m{beta}"))
            summarize(f"beta={beta}, Adam beta1=0", train_and_measure(with_adam_beta1(run, 0.0)))


def step_size_test(args: argparse.Namespace, scratch: str) -> None:
    """beta = 0 and 0.9 at the same lr, then beta = 0.9 at the lr scaled by their step ratio."""
    from molmtl.training import prepare_run

    ratios = {}
    for beta in (0.0, 0.9):
        run = prepare_run(config_for(args, beta, args.lr, f"{scratch}/b{beta}"))
        ratios[beta] = summarize(f"beta={beta}, lr={args.lr:g}", train_and_measure(run))
    scale = ratios[0.0] / ratios[0.9]
    print(f"effective-step ratio beta=0.9 / beta=0: {1 / scale:.2f}x")
    lr = args.lr * scale
    run = prepare_run(config_for(args, 0.9, lr, f"{scratch}/scaled"))
    summarize(f"beta=0.9, lr={lr:.2g} (scaled)", train_and_measure(run))


if __name__ == "__main__":
    main()
