"""Benchmark of molmtl's predictor: end-to-end molecules/s and streaming memory.

Measured side by side in one run, medians of ``--repeats``:

1. throughput on ``--n`` QM9 SMILES, end to end (featurize + model + DataFrame) with
   ``Predictor.predict``, split into its stages (featurize only, model only), and against the
   naive loop that predicts one molecule at a time (on ``--n-naive`` molecules);
2. peak memory (RSS) of ``Predictor.predict_file`` streaming CSVs of ``--stream-rows`` rows made
   by repeating QM9 SMILES, each in a fresh subprocess (Linux: VmHWM, reset after loading the
   model; elsewhere ``getrusage``): flat memory means the peak does not grow with the rows.

The models are untrained (speed does not depend on the weights) unless ``--model RUN_DIR`` is given.

    python scripts/bench_predict.py                       # full: 10k molecules, 100k and 1M rows
    python scripts/bench_predict.py --n 2000 --stream-rows 20000,200000 --repeats 1   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

QM9_CSV = REPO.parent / "shared" / "data" / "qm9" / "qm9.csv.xz"
#: the default 2D model (build_model's defaults) and the QM9 benchmark MPNN
MODELS = {"default": {}, "mpnn": {"encoder": "mpnn"}}
N_QM9_TARGETS = 11


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=QM9_CSV, help="QM9 CSV (default: %(default)s)")
    parser.add_argument(
        "--n", type=int, default=10_000, help="molecules for the throughput test (0 skips it)"
    )
    parser.add_argument(
        "--n-naive", type=int, default=500, help="molecules for the one-at-a-time loop"
    )
    parser.add_argument(
        "--models", default="default,mpnn", help=f"comma-separated, from {sorted(MODELS)}"
    )
    parser.add_argument(
        "--model", type=Path, help="a trained run directory instead of untrained models"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        default="1,2",
        help="comma-separated torch intra-op thread counts to compare (default: 1,2)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the Predictor's")
    parser.add_argument(
        "--n-jobs", type=int, default=None, help="featurization workers (default: auto)"
    )
    parser.add_argument(
        "--stream-rows",
        default="100000,1000000",
        help="comma-separated CSV lengths for the memory test ('' skips it)",
    )
    parser.add_argument("--stream-model", default="default", help="model used for the memory test")
    parser.add_argument(
        "--stream-worker", nargs=3, metavar=("RUN_DIR", "IN_CSV", "OUT_CSV"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()

    import torch

    args.thread_counts = [int(t) for t in args.threads.split(",")]
    torch.set_num_threads(args.thread_counts[-1])
    if args.stream_worker:
        stream_worker(*args.stream_worker, args)
        return

    import pandas as pd

    if not args.data.is_file():
        sys.exit(f"QM9 not found at {args.data}; pass --data path/to/qm9.csv[.xz]")
    smiles = pd.read_csv(args.data, usecols=["smiles"])["smiles"].tolist()
    sample = smiles[: args.n]
    print(
        f"device={args.device} n={len(sample)} repeats={args.repeats} torch={torch.__version__} "
        f"cpus={os.cpu_count()} load average before={os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        run_dirs = (
            {"trained": args.model}
            if args.model
            else make_run_dirs(Path(scratch), args.models.split(","))
        )
        for name, run_dir in run_dirs.items():
            for threads in args.thread_counts if sample else ():
                torch.set_num_threads(threads)
                bench_throughput(f"{name}, {threads} thread(s)", run_dir, sample, args)
        rows = [int(r) for r in args.stream_rows.split(",") if r]
        if rows:
            stream_dir = run_dirs.get(args.stream_model) or next(iter(run_dirs.values()))
            bench_streaming(stream_dir, smiles, rows, Path(scratch), args)


def make_run_dirs(scratch: Path, names: list[str]) -> dict[str, Path]:
    from molmtl import featurizers
    from molmtl.models import build_model, save_model

    spec = featurizers.get("2d").spec
    targets = [{"name": f"t{i}", "unit": "1"} for i in range(N_QM9_TARGETS)]
    run_dirs = {}
    for name in names:
        model = build_model(
            MODELS[name], node_dim=spec["node_dim"], edge_dim=spec["edge_dim"], n_tasks=len(targets)
        )
        run_dirs[name] = scratch / name
        save_model(run_dirs[name], model, {"featurizer": spec, "targets": targets})
    return run_dirs


def median_seconds(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load_predictor(run_dir: Path | str, args: argparse.Namespace):
    from molmtl.predict import Predictor

    return Predictor.load(
        run_dir,
        device=args.device,
        chunk_size=args.chunk_size,
        batch_size=args.batch_size,
        n_jobs=args.n_jobs,
    )


def bench_throughput(name: str, run_dir: Path, smiles: list[str], args: argparse.Namespace) -> None:
    import torch

    predictor = load_predictor(run_dir, args)
    n_parameters = sum(p.numel() for p in predictor.models[0].parameters())
    featurized = predictor.featurizer.featurize_many(smiles, n_jobs=args.n_jobs)

    def model_only() -> None:
        predictor._forward(featurized.graphs)
        if predictor.device.type == "cuda":
            torch.cuda.synchronize()

    predictor.predict(smiles[:100])  # warm-up (lazy imports, allocator)
    end_to_end = median_seconds(lambda: predictor.predict(smiles), args.repeats)
    featurize = median_seconds(
        lambda: predictor.featurizer.featurize_many(smiles, n_jobs=args.n_jobs), args.repeats
    )
    forward = median_seconds(model_only, args.repeats)
    naive_smiles = smiles[: args.n_naive]
    naive = median_seconds(lambda: [predictor.predict(s) for s in naive_smiles], 1)
    n = len(smiles)
    rate = n / end_to_end
    naive_rate = len(naive_smiles) / naive
    print(
        f"\n[{name}] {predictor.models[0].config.get('encoder')} encoder, {n_parameters:,} parameters"
    )
    print(
        f"  end to end (featurize + model + DataFrame): {rate:8.0f} molecules/s  ({end_to_end:.2f} s)"
    )
    print(
        f"    featurize only:                           {n / featurize:8.0f} molecules/s  ({featurize / end_to_end:.0%} of end to end)"
    )
    print(
        f"    model only:                               {n / forward:8.0f} molecules/s  ({forward / end_to_end:.0%} of end to end)"
    )
    print(f"  one molecule at a time (predict(s) loop):   {naive_rate:8.0f} molecules/s")
    print(
        f"  ratio batched / one at a time: {rate / naive_rate:.1f}x; goal >= 2000 molecules/s: {'met' if rate >= 2000 else 'NOT met'}"
    )


def bench_streaming(
    run_dir: Path, smiles: list[str], rows: list[int], scratch: Path, args: argparse.Namespace
) -> None:
    threads = args.thread_counts[-1]
    print(
        f"\n[streaming predict_file, chunk_size={args.chunk_size}, {threads} thread(s)] "
        "peak RSS in a fresh process per file"
    )
    peaks, added = {}, {}
    for n_rows in rows:
        in_csv = scratch / f"in_{n_rows}.csv"
        write_repeated_csv(in_csv, smiles, n_rows)
        worker = ["--stream-worker", str(run_dir), str(in_csv), str(scratch / "out.csv")]
        settings = ["--device", args.device, "--threads", str(threads)]
        settings += ["--chunk-size", str(args.chunk_size)]
        settings += ["--batch-size", str(args.batch_size)] if args.batch_size else []
        settings += ["--n-jobs", str(args.n_jobs)] if args.n_jobs else []
        command = [sys.executable, __file__, *worker, *settings]
        report = json.loads(
            subprocess.run(command, check=True, capture_output=True, text=True).stdout
        )
        in_csv.unlink()
        peaks[n_rows] = report["peak_mb"]
        added[n_rows] = report["peak_mb"] - report["loaded_mb"]
        print(
            f"  {n_rows:>9,} rows: peak RSS {report['peak_mb']:7.0f} MB (after loading: "
            f"{report['loaded_mb']:.0f} MB, streaming adds {added[n_rows]:.0f} MB), "
            f"{n_rows / report['seconds']:.0f} rows/s"
        )
    if len(peaks) > 1:
        small, large = min(peaks), max(peaks)
        print(
            f"  {large:,} vs {small:,} rows ({large / small:.0f}x longer): peak RSS ratio "
            f"{peaks[large] / peaks[small]:.2f}, streaming's own memory {added[small]:.0f} -> "
            f"{added[large]:.0f} MB (flat = ratio 1.00)"
        )


def write_repeated_csv(path: Path, smiles: list[str], n_rows: int) -> None:
    """``id,smiles`` with ``n_rows`` rows cycling through ``smiles``, written in pieces."""
    with open(path, "w") as out:
        out.write("id,smiles\n")
        for start in range(0, n_rows, 100_000):
            stop = min(start + 100_000, n_rows)
            out.writelines(f"{i},{smiles[i % len(smiles)]}\n" for i in range(start, stop))


def stream_worker(run_dir: str, in_csv: str, out_csv: str, args: argparse.Namespace) -> None:
    predictor = load_predictor(run_dir, args)
    predictor.predict(["CCO"] * 100)  # warm-up, so the baseline includes torch's own allocations
    reset_peak_rss()
    loaded_mb = peak_rss_mb()  # = the current RSS right after the reset
    start = time.perf_counter()
    predictor.predict_file(in_csv, out_csv)
    seconds = time.perf_counter() - start
    print(json.dumps({"loaded_mb": loaded_mb, "peak_mb": peak_rss_mb(), "seconds": seconds}))


def peak_rss_mb() -> float:
    """Peak RSS of this process image in MB.

    Linux's VmHWM starts afresh at exec; ``getrusage``'s ``ru_maxrss`` does not (it keeps the
    parent's RSS at fork time), so it is only the fallback on other systems.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Restart the peak at the current RSS (Linux >= 4.0), so the next peak is streaming's own."""
    clear_refs = Path("/proc/self/clear_refs")
    if clear_refs.exists():
        clear_refs.write_text("5")


if __name__ == "__main__":
    main()
