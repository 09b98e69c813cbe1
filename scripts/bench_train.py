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


def main() -> None:
    from torch_geometric.data import Data
    from torch_geometric.loader import DataLoader

    from molmtl import balancing
    from molmtl.data import TargetScaler, load_qm9
    from molmtl.models import build_model
    from molmtl.training.trainer import compile_model, resolve_device, train_epoch

    args = parse_args()
    device = resolve_device(args.device)
    started = time.perf_counter()
    dataset = load_qm9(args.data, featurizer=args.featurizer)
    chosen = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(args.seed))[
        : args.n_molecules
    ]
    y = torch.as_tensor(
        TargetScaler().fit(dataset.y[chosen]).transform(dataset.y), dtype=torch.float32
    )
    print(
        f"loaded {len(dataset)} molecules in {time.perf_counter() - started:.1f} s; training on {len(chosen)}"
    )

    torch.manual_seed(args.seed)
    model = build_model(
        {"encoder": args.encoder},
        node_dim=dataset.graphs.node_dim,
        edge_dim=dataset.graphs.edge_dim,
        n_tasks=y.shape[1],
    ).to(device)
    models = {"published": model, "molmtl": copy.deepcopy(model)}

    def optimizer_and_balancer(net):
        balancer = balancing.get(
            args.balancer,
            shared=net.shared_parameters(),
            task_specific=net.task_parameters(),
            n_tasks=y.shape[1],
        )
        return torch.optim.Adam(net.parameters(), lr=1e-3), balancer

    # published path: PyG Data objects and DataLoader, collated on the CPU every step
    data_list = []
    for i in chosen.tolist():
        graph = dataset.graphs.get(i)
        data_list.append(
            Data(x=graph.x, edge_index=graph.edge_index, edge_attr=graph.edge_attr, y=y[i : i + 1])
        )
    loader = DataLoader(data_list, batch_size=args.batch_size, shuffle=True)
    published_optimizer, published_balancer = optimizer_and_balancer(models["published"])

    published_forward = (
        PublishedMPNN(models["published"]) if args.encoder == "mpnn" else models["published"]
    )

    def published_epoch() -> None:
        for data in loader:
            data = data.to(device)
            published_optimizer.zero_grad()
            out = published_forward(data)
            losses = torch.nn.functional.mse_loss(out, data.y, reduction="none").mean(0)
            published_balancer.backward(losses)
            published_optimizer.step()

    # molmtl path: everything on the device once, batches gathered there
    graphs = dataset.graphs.to(device)
    device_y = y.to(device)
    molmtl_optimizer, molmtl_balancer = optimizer_and_balancer(models["molmtl"])
    forward = compile_model(models["molmtl"]) if args.compile else models["molmtl"]
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16) if args.precision == "bf16" else None
    )
    shuffle = torch.Generator().manual_seed(args.seed)

    def molmtl_epoch() -> None:
        order = chosen[torch.randperm(len(chosen), generator=shuffle)]
        sums = train_epoch(
            forward,
            molmtl_balancer,
            molmtl_optimizer,
            graphs,
            device_y,
            order,
            batch_size=args.batch_size,
            autocast=autocast,
        )
        sums.means().cpu()  # the trainer's one read per epoch

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
