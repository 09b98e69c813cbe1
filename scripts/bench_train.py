"""Training epoch time: molmtl's trainer path vs the way published QM9 multi-task code trains.

Both paths train the same model (same initial weights) with the same balancer implementation,
batch size and molecules, so the difference is the data pipeline and the loop:

* published: a list of PyG ``Data`` objects, ``torch_geometric.loader.DataLoader(shuffle=True)``
  collating each batch in Python on the CPU, ``batch.to(device)``, a plain loop (the Nash-MTL /
  DB-MTL QM9 trainers);
* molmtl: the packed dataset moved to the device once, each batch gathered on the device
  (``PackedGraphs.batch``), :func:`molmtl.training.trainer.train_epoch` (no host sync per step).

With ``--encoder mpnn`` the published path also runs the published forward pass (``NNConv``
recomputing the edge network in each of the 3 rounds) on the same parameters; molmtl's MPNN
computes it once. Both compute the same function.

Epochs of the two paths alternate, so machine noise hits both; the script prints the median
epoch time of each and the ratio published / molmtl (> 1: molmtl is faster).

    python scripts/bench_train.py --data ../shared/data/qm9 --n-molecules 2000 --device cpu
    python scripts/bench_train.py --data ../shared/data/qm9 --featurizer 3d --encoder mpnn \\
        --balancer dbmtl --n-molecules 20000 --device cuda
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run from a checkout without installing


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", default=None, help="QM9 folder or file (default: the data layer's lookup)"
    )
    parser.add_argument(
        "--n-molecules", type=int, default=2000, help="training molecules per epoch"
    )
    parser.add_argument("--featurizer", default="2d", help="2d or 3d")
    parser.add_argument("--encoder", default="gine", help="mpnn or gine")
    parser.add_argument(
        "--balancer", default="ew", help="balancing method of both paths (e.g. ew, dbmtl)"
    )
    parser.add_argument("--batch-size", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per path")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs per path first")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument(
        "--precision", default="fp32", choices=["fp32", "bf16"], help="molmtl path only"
    )
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the molmtl path's model"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


class PublishedMPNN(torch.nn.Module):
    """The Nash-MTL QM9 forward pass (``NNConv`` called each round) on a molmtl MPNN's parameters."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, data) -> torch.Tensor:
        encoder = self.model.encoder
        out = torch.relu(encoder.embed(data.x))
        hidden = out.unsqueeze(0)
        for _ in range(encoder.n_iterations):
            messages = torch.relu(encoder.conv(out, data.edge_index, data.edge_attr))
            out, hidden = encoder.gru(messages.unsqueeze(0), hidden)
            out = out.squeeze(0)
        pooled = encoder.readout(out, data.batch, dim_size=data.num_graphs)
        return self.model.heads(torch.relu(encoder.project(pooled)))


def prepare(args: argparse.Namespace, out: str):
    """The molmtl run exactly as ``molmtl train`` prepares it (data on the device, model, balancer)."""
    from molmtl.training import TrainConfig, prepare_run

    config = TrainConfig(
        data=args.data,
        featurizer=args.featurizer,
        # the training split is 80% of the subset: n_molecules training molecules per epoch
        n_molecules=max(3, round(args.n_molecules / 0.8)),
        split="random",
        model={"encoder": args.encoder},
        balancer=args.balancer,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
        seed=args.seed,
        out=out,
    )
    return prepare_run(config)


def main() -> None:
    from torch_geometric.data import Data
    from torch_geometric.loader import DataLoader

    from molmtl import balancing
    from molmtl.training import train_epoch

    args = parse_args()
    started = time.perf_counter()
    run = prepare(args, tempfile.mkdtemp(prefix="bench_train_"))
    device, chosen = run.device, run.split.train
    print(f"prepared in {time.perf_counter() - started:.1f} s; training on {len(chosen)} molecules")

    # published path: same initial weights, PyG Data objects and DataLoader collated on the CPU
    published = copy.deepcopy(run.model)
    published_balancer = balancing.get(
        args.balancer,
        shared=published.shared_parameters(),
        task_specific=published.task_parameters(),
        n_tasks=run.targets.shape[1],
    )
    published_optimizer = torch.optim.Adam(published.parameters(), lr=run.config.lr)
    y = run.standardized.cpu()
    data_list = []
    for i in chosen.tolist():
        graph = run.graphs.get(i)
        data_list.append(
            Data(
                x=graph.x.cpu(),
                edge_index=graph.edge_index.cpu(),
                edge_attr=graph.edge_attr.cpu(),
                y=y[i : i + 1],
            )
        )
    loader = DataLoader(data_list, batch_size=args.batch_size, shuffle=True)
    published_forward = PublishedMPNN(published) if args.encoder == "mpnn" else published
    models = {"published": published, "molmtl": run.model}

    def published_epoch() -> None:
        for data in loader:
            data = data.to(device)
            published_optimizer.zero_grad()
            out = published_forward(data)
            losses = torch.nn.functional.mse_loss(out, data.y, reduction="none").mean(0)
            published_balancer.backward(losses)
            published_optimizer.step()

    def molmtl_epoch() -> None:
        order = chosen[torch.randperm(len(chosen), generator=run.shuffle_generator)]
        sums = train_epoch(
            run.forward,
            run.balancer,
            run.optimizer,
            run.graphs,
            run.standardized,
            order,
            batch_size=args.batch_size,
            autocast=run.autocast,
        )
        sums.means().stacked().cpu()  # the trainer's one read per epoch

    epochs = {"published": published_epoch, "molmtl": molmtl_epoch}
    times: dict[str, list[float]] = {name: [] for name in epochs}
    for epoch in range(args.warmup + args.epochs):
        for name, run_epoch in epochs.items():
            models[name].train()
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            run_epoch()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if epoch >= args.warmup:
                times[name].append(time.perf_counter() - started)

    medians = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"device={device} encoder={args.encoder} featurizer={args.featurizer} balancer={args.balancer} "
        f"molecules={len(chosen)} batch={args.batch_size} precision={args.precision} compile={args.compile}"
    )
    for name, values in times.items():
        shown = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {name:<10} median epoch {medians[name]:.3f} s  ({shown})")
    print(f"  ratio published / molmtl: {medians['published'] / medians['molmtl']:.2f}x")


if __name__ == "__main__":
    main()
