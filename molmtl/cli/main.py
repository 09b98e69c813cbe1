"""``molmtl``: the command-line entry point, a registry of subcommand modules.

Each subcommand is a module with ``add_arguments(parser)`` and ``run(args) -> int`` that imports
its heavy dependencies inside ``run``. Only the module of the command being run is imported, so
``molmtl --help`` never loads torch or RDKit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import import_module

from molmtl._version import __version__
from molmtl.rundir import Terminated, exit_on_sigterm

#: command → (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("molmtl.cli.train", "train a multi-task model (writes a run directory)"),
    "evaluate": ("molmtl.cli.evaluate", "per-task MAE and Δm%% of a run on its test split"),
    "plot": ("molmtl.cli.plot", "draw a run's training curves as PNG files"),
    "predict": ("molmtl.cli.predict", "predict properties for SMILES with trained models"),
    "models": ("molmtl.cli.models", "list the models shipped with molmtl (predict's default)"),
    "benchmark": (
        "molmtl.cli.benchmark",
        "compare balancers on a protocol against single-task models (Δm%%)",
    ),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="molmtl",
        description="Molecular multi-property prediction with a shared GNN and multi-task balancing.",
        epilog="Run `molmtl COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"molmtl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (_, help_text) in COMMANDS.items():
        commands.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``molmtl`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    Ctrl-C prints ``molmtl: interrupted`` and returns 130, SIGTERM ``molmtl: terminated`` and
    143 (both after cleaning up: no partial output is left); a closed stdout (``| head``)
    ends the command quietly with 141, as SIGPIPE would. Never a traceback.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    with _sigterm_raises():
        try:
            code = _run(argv)
            if sys.stdout is not None:  # None: started with stdout closed
                sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
            return code
        except KeyboardInterrupt:
            print("molmtl: interrupted", file=sys.stderr)
            return 128 + signal.SIGINT
        except Terminated:
            print("molmtl: terminated", file=sys.stderr)
            return 128 + signal.SIGTERM
        except BrokenPipeError:
            # the reader of stdout went away: drop what is still buffered, say nothing
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 128 + signal.SIGPIPE


def _run(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        parser = _top_parser()
        if not argv:
            parser.print_help()
            return 2
        parser.parse_args(argv)  # handles --help / --version, reports unknown commands
        return 2
    name = argv[0]
    module = import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(
        prog=f"molmtl {name}", description=COMMANDS[name][1].replace("%%", "%")
    )
    module.add_arguments(parser)
    return int(module.run(parser.parse_args(argv[1:])) or 0)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`~molmtl.rundir.Terminated` inside the block (main thread only;
    the previous handler is restored after, for callers such as tests that run :func:`main`
    in-process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
