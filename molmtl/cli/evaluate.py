"""``molmtl evaluate RUN_DIR``: per-task MAE, Δm% and normalized MAE of a run on one split."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", metavar="RUN_DIR", help="run directory written by `molmtl train`"
    )
    parser.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test"],
        help="split to evaluate (default: test)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda if available)")
    parser.add_argument(
        "--data", default=None, help="the run's dataset, if not where training found it"
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")


def run(args: argparse.Namespace) -> int:
    from molmtl.cli.train import _format_metrics, one_line, warnings_as_lines
    from molmtl.training import evaluate

    try:
        with warnings_as_lines("molmtl evaluate"):
            metrics = evaluate(args.run_dir, split=args.split, device=args.device, data=args.data)
    # ConfigError and RunDirError are ValueErrors; OSError: unreadable files
    except (ValueError, OSError) as error:
        print(f"molmtl evaluate: error: {one_line(error)}", file=sys.stderr)
        return 1
    print(json.dumps(metrics, indent=2) if args.json else _format_metrics(metrics))
    return 0
