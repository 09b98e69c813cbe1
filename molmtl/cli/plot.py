"""``molmtl plot RUN_DIR``: PNG figures of loss, gradient norms, task weights and validation MAE."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", metavar="RUN_DIR", help="run directory written by `molmtl train`"
    )
    parser.add_argument(
        "--out", default=None, help="folder for the PNG files (default: RUN_DIR/plots)"
    )


def run(args: argparse.Namespace) -> int:
    from molmtl.training import plot

    try:
        paths = plot(args.run_dir, args.out)
    except (FileNotFoundError, ValueError) as error:
        print(f"molmtl plot: error: {error}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0
