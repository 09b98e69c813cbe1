"""``molmtl benchmark``: a thin layer over :func:`molmtl.benchmark.run_benchmark` and
:func:`molmtl.benchmark.write_report`."""

from __future__ import annotations

import argparse
import sys

from molmtl._threads import threads_argument


def _names(text: str) -> list[str]:
    return [name for name in text.split(",") if name]


def _seeds(text: str) -> list[int]:
    try:
        return [int(seed) for seed in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"seeds must be integers like 0,1,2, got {text!r}"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", help="smoke, reduced or paper (see --list)")
    parser.add_argument("--out", help="benchmark directory (runs, tables and plots go here)")
    parser.add_argument(
        "--methods", type=_names, help="comma-separated method labels (default: all)"
    )
    parser.add_argument(
        "--seeds",
        type=_seeds,
        help="comma-separated seeds to run (with --report-only: to report; default: the protocol's, or every finished seed)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument(
        "--threads",
        type=threads_argument,
        help="torch threads per run: a number or auto (default: the free cores divided by --jobs)",
    )
    parser.add_argument("--data", help="QM9 data folder or file (default: the usual lookup)")
    parser.add_argument("--device", help="auto, cpu, cuda ... (default: the protocol's, auto)")
    parser.add_argument(
        "--report-only", action="store_true", help="only rebuild the tables and plots of --out"
    )
    parser.add_argument("--list", action="store_true", help="list the protocols and their methods")


def run(args: argparse.Namespace) -> int:
    from molmtl.benchmark import PROTOCOLS, BenchmarkError, run_benchmark, write_report
    from molmtl.training import ConfigError

    if args.list:
        for protocol in PROTOCOLS.values():
            print(f"{protocol.name}: {protocol.description}")
            print(f"  methods: {', '.join(protocol.labels())}; seeds: {list(protocol.seeds)}")
        return 0
    if args.out is None or (args.protocol is None and not args.report_only):
        print("molmtl benchmark: error: give --protocol and --out (or --list)", file=sys.stderr)
        return 2
    settings = {key: getattr(args, key) for key in ("data", "device") if getattr(args, key)}
    try:
        failed = []
        if not args.report_only:
            failed = run_benchmark(
                args.protocol,
                args.out,
                methods=args.methods,
                seeds=args.seeds,
                jobs=args.jobs,
                threads=args.threads,
                settings=settings,
            )
        paths = write_report(
            args.out, args.protocol, seeds=args.seeds if args.report_only else None
        )
    except (BenchmarkError, ConfigError, ValueError, OSError) as error:
        print(f"molmtl benchmark: error: {error}", file=sys.stderr)
        return 1
    print(paths["table"].read_text())
    print("written: " + ", ".join(str(path) for path in paths.values()))
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(r.name for r in failed)}", file=sys.stderr)
        return 1
    return 0
