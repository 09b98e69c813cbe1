"""``molmtl train``: a thin layer over :func:`molmtl.training.train`.

Settings come from, in increasing priority: the defaults, ``--preset``, ``--config`` (TOML or
YAML), then the flags below.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from molmtl._threads import configure_threads, threads_argument

#: flag → (TrainConfig field, type, help)
FLAGS: dict[str, tuple[str, type, str]] = {
    "--data": ("data", str, "QM9 data (file or folder) or CSV path"),
    "--dataset": ("dataset", str, "qm9 or csv"),
    "--smiles-column": ("smiles_column", str, "SMILES column of a CSV dataset"),
    "--featurizer": ("featurizer", str, "2d or 3d"),
    "--n-molecules": ("n_molecules", int, "train on a random subset of this many molecules"),
    "--split": ("split", str, "benchmark, random or scaffold"),
    "--encoder": ("encoder", str, "mpnn or gine; replaces the model section with its defaults"),
    "--balancer": ("balancer", str, "balancing method, e.g. dbmtl, ew, pcgrad, pcgrad+log"),
    "--epochs": ("epochs", int, "number of epochs"),
    "--batch-size": ("batch_size", int, "molecules per training step"),
    "--lr": ("lr", float, "Adam learning rate"),
    "--device": ("device", str, "auto, cpu, cuda, cuda:1 ..."),
    "--precision": ("precision", str, "fp32 or bf16"),
    "--seed": ("seed", int, "seed of the split, initialisation and shuffling"),
    "--out": ("out", str, "run directory to write"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset", help="start from a preset: qm9-quick (CPU, minutes) or qm9-paper (GPU)"
    )
    parser.add_argument(
        "--config", metavar="FILE", help="TOML or YAML file of TrainConfig settings"
    )
    for flag, (field, kind, help_text) in FLAGS.items():
        parser.add_argument(flag, dest=field, type=kind, help=help_text)
    parser.add_argument(
        "--targets", nargs="+", metavar="NAME", help="target names (CSV: its target columns)"
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the model",
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when a terminal)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint (settings from its config.json)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the run in --out if there is one"
    )
    parser.add_argument(
        "--threads",
        type=threads_argument,
        help="CPU threads: a number or auto (default: $MOLMTL_THREADS, else auto: the free cores)",
    )


def run(args: argparse.Namespace) -> int:
    from molmtl.training import RankFailedError

    # torchrun's ranks on this node share its free cores
    configure_threads(args.threads, jobs=int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    try:
        with warnings_as_lines("molmtl train"):
            run_dir = _train(args)
    # ConfigError and RunDirError are ValueErrors; OSError: unreadable data, a full disk
    except (ValueError, OSError, RankFailedError) as error:
        print(f"molmtl train: error: {one_line(error)}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # rank 0 reports
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    print(f"run directory: {run_dir}")
    print(_format_metrics(metrics))
    return 0


def _train(args: argparse.Namespace) -> Path:
    """The run directory trained as ``args`` say."""
    from molmtl.training import ConfigError, TrainConfig, train

    overrides = {
        field: getattr(args, field) for field, _, _ in FLAGS.values() if field != "encoder"
    }
    overrides.update(targets=args.targets, compile=args.compile, progress=args.progress)
    given = {field: value for field, value in overrides.items() if value is not None}
    if args.resume and not (args.preset or args.config):
        if args.out is None:
            raise ConfigError("--resume needs --out, the run directory to continue")
        config = TrainConfig.from_run(args.out, given)
    else:
        config = TrainConfig.load(preset=args.preset, path=args.config, overrides=given)
    if args.encoder is not None:
        config = config.replace(model={"encoder": args.encoder})
    return train(config, resume=args.resume, overwrite=args.overwrite)


def one_line(error: BaseException, limit: int = 2000) -> str:
    """The message of ``error`` on one line, at most ``limit`` characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def warnings_as_lines(prog: str) -> Iterator[None]:
    """Show warnings as ``prog: warning: message`` lines on stderr, each once."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"{prog}: warning: {one_line(message)}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _format_metrics(metrics: dict) -> str:
    lines = [
        f"test MAE ({metrics['n_molecules']} molecules, best epoch {metrics.get('best_epoch', '?')}):"
    ]
    for name, value in metrics["mae"].items():
        shown = "n/a" if value is None else f"{value:.4g}"
        lines.append(f"  {name:<12} {shown:>10} {metrics['units'][name]}")
    if metrics.get("delta_m_percent") is not None:
        lines.append(f"  Δm% vs single-task reference: {metrics['delta_m_percent']:+.2f}")
    lines.append(f"  mean normalized MAE: {metrics['normalized_mae']:.4f}")
    return "\n".join(lines)
