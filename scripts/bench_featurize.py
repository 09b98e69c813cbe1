"""Featurization throughput: molmtl's 2D featurizer vs PyG's ``from_smiles`` on the same SMILES.

Also times mini-batch assembly: ``PackedGraphs.batch`` (gathers on the device) vs PyG's
``Batch.from_data_list`` (+ ``.to(device)``) on the same graphs. Prints medians of repeats and
the ratios, measured side by side in one run.

    python scripts/bench_featurize.py                       # 10,000 QM9 SMILES, CPU
    python scripts/bench_featurize.py --n 130831 --n-jobs -1 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch


def median_seconds(runs: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median time of each run; the runs alternate within each repeat, so that load changes
    on a shared machine hit all of them alike."""
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for run, record in zip(runs, times, strict=True):
            start = time.perf_counter()
            run()
            record.append(time.perf_counter() - start)
    return [statistics.median(record) for record in times]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=None, help="QM9 folder (default: the usual search)")
    parser.add_argument("--n", type=int, default=10_000, help="number of QM9 SMILES (first n)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--n-jobs", type=int, default=1, help="molmtl worker processes (-1: all CPUs)"
    )
    parser.add_argument("--device", default="cpu", help="device for the batching comparison")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: these small gathers gain nothing from threads, "
        "and on a busy CPU thread synchronization makes them stall)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from torch_geometric.data import Batch
    from torch_geometric.utils import from_smiles

    from molmtl import featurizers
    from molmtl.data.qm9 import locate_qm9, read_qm9

    frame, _ = read_qm9(locate_qm9(args.data, download=False))
    smiles = frame["smiles"].tolist()[: args.n]
    featurizer = featurizers.get("2d")
    print(f"{len(smiles)} QM9 SMILES, {args.repeats} repeats, molmtl n_jobs={args.n_jobs}")

    ours, theirs = median_seconds(
        [
            lambda: featurizer.featurize_many(smiles, n_jobs=args.n_jobs),
            lambda: [from_smiles(s) for s in smiles],
        ],
        args.repeats,
    )
    print(
        f"molmtl 2d   : {len(smiles) / ours:10.0f} molecules/s  (x [n, {featurizer.node_dim}] one-hot float32, "
        f"edge_attr [m, {featurizer.edge_dim}])"
    )
    print(
        f"PyG from_smiles: {len(smiles) / theirs:7.0f} molecules/s  (x [n, 9] integer codes, edge_attr [m, 3])"
    )
    print(f"throughput ratio molmtl / PyG: {theirs / ours:.2f}x")

    device = torch.device(args.device)
    graphs = featurizer.featurize_many(smiles, n_jobs=args.n_jobs).graphs
    data_list = [graphs.get(i) for i in range(len(graphs))]
    on_device = graphs.to(device)
    batches = torch.randperm(len(graphs), generator=torch.Generator().manual_seed(0)).split(
        args.batch_size
    )

    def packed_epoch() -> None:
        for index in batches:
            on_device.batch(index)
        synchronize(device)

    def pyg_epoch() -> None:
        for index in batches:
            Batch.from_data_list([data_list[i] for i in index.tolist()]).to(device)
        synchronize(device)

    packed, pyg = median_seconds([packed_epoch, pyg_epoch], args.repeats)
    print(
        f"batching ({len(batches)} batches of {args.batch_size} on {device}): PackedGraphs.batch {packed:.3f} s, "
        f"Batch.from_data_list {pyg:.3f} s, ratio {pyg / packed:.1f}x"
    )


if __name__ == "__main__":
    main()
