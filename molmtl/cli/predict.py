"""``molmtl predict``: properties for SMILES given as arguments or in a CSV file.

A thin layer over :class:`molmtl.predict.Predictor`. Exit codes: 0 when the run completed (even
with invalid rows, which get NaN properties and their reason), 1 when it could not run (missing
or broken model, unreadable input, bad column), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

from molmtl._threads import configure_threads, threads_argument

if TYPE_CHECKING:
    import pandas as pd

    from molmtl.predict import PredictionSummary, Predictor

#: a handful of SMILES arguments is shown as a table with units; a CSV is for machines
TABLE_FLOAT_FORMAT = "{:.6g}".format


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Predict properties for SMILES given as arguments (printed as a table) or in a CSV file "
        "(every input column kept, prediction columns appended). Invalid SMILES get NaN "
        "properties and the reason; molecules outside the chemistry the model was trained on get "
        "in_domain=False and the reason in domain_note; a summary line goes to stderr."
    )
    parser.add_argument(
        "smiles", nargs="*", metavar="SMILES", help="SMILES to predict (instead of --input)"
    )
    parser.add_argument(
        "--model",
        "-m",
        action="append",
        metavar="RUN_DIR",
        help="run directory written by `molmtl train`, or the name of a shipped model (`molmtl "
        "models`); repeat for an ensemble (mean and std). Default: the shipped QM9 model",
    )
    _add_input_output_arguments(parser)
    _add_resource_arguments(parser)


def _add_input_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input", "-i", metavar="CSV", help="CSV with a SMILES column, '-' for stdin"
    )
    parser.add_argument(
        "--output",
        "-o",
        default="-",
        metavar="CSV",
        help="output CSV, '-' for stdout (default); SMILES arguments print a table to stdout",
    )
    parser.add_argument(
        "--smiles-column",
        default="smiles",
        help="column of --input holding SMILES (default: smiles)",
    )
    parser.add_argument(
        "--prefix",
        default="pred_",
        help="prefix of the prediction columns added to --input's columns (default: pred_)",
    )


def _add_resource_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)"
    )
    parser.add_argument(
        "--threads",
        type=threads_argument,
        default=None,
        help="CPU threads: a number or auto (default: $MOLMTL_THREADS, else auto: the free cores)",
    )
    parser.add_argument(
        "--n-jobs",
        type=_integer,
        default=None,
        help="featurization worker processes, -1 for all CPUs (default: automatic by chunk size)",
    )
    parser.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=10_000,
        help="rows featurized and held in memory at a time (default: 10000)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="molecules per forward pass (default: 256 on CPU, 4096 on a GPU)",
    )


def run(args: argparse.Namespace) -> int:
    if bool(args.smiles) == (args.input is not None):
        print(
            "molmtl predict: error: give SMILES arguments or --input CSV (one of them)",
            file=sys.stderr,
        )
        return 2
    from molmtl.featurizers import FeaturizerSpecError
    from molmtl.models import RunDirError
    from molmtl.predict import PredictorError, check_output

    failures = (RunDirError, FeaturizerSpecError, PredictorError, OSError)
    try:
        _check_standard_streams(args)
        if args.output != "-":
            check_output(args.output)  # before any work: a model is not loaded for nothing
        configure_threads(args.threads)
        predictor = _load_predictor(args)
        summary = _predict(predictor, args)
    except BrokenPipeError:
        raise  # stdout was closed (`| head`): molmtl's main ends quietly
    except failures as error:
        print(f"molmtl predict: error: {error}", file=sys.stderr)
        return 1
    print(f"molmtl predict: {summary}", file=sys.stderr)
    return 0


def _load_predictor(args: argparse.Namespace) -> Predictor:
    """The models of ``--model``: run directories, or shipped models by name (a directory of
    the same name wins); the shipped default without ``--model``. Says which shipped model answers."""
    from molmtl.predict import Predictor
    from molmtl.pretrained import DEFAULT_MODEL, available_models, get_model

    names = args.model or [DEFAULT_MODEL]
    shipped = {name for name in names if name in available_models() and not Path(name).exists()}
    with contextlib.ExitStack() as stack:
        folders = [
            stack.enter_context(get_model(name).folder()) if name in shipped else name
            for name in names
        ]
        predictor = Predictor.load(
            folders,
            device=args.device,
            chunk_size=args.chunk_size,
            batch_size=args.batch_size,
            n_jobs=args.n_jobs,
        )
    for name in sorted(shipped):
        print(
            f"molmtl predict: model: {name}, shipped with molmtl ({get_model(name).summary})",
            file=sys.stderr,
        )
    return predictor


def _predict(predictor: Predictor, args: argparse.Namespace) -> PredictionSummary:
    """Predict ``--input`` into ``--output``, or the SMILES arguments as a table or a CSV."""
    from molmtl.predict import TEXT_ERRORS, PredictionSummary, open_output, write_csv

    if args.output == "-" and hasattr(sys.stdout, "reconfigure"):
        # a SMILES of bytes that are not UTF-8 (an argument, a cell) is written back as those bytes
        sys.stdout.reconfigure(errors=TEXT_ERRORS)
    if args.input is not None:
        return predictor.predict_file(
            _stdin(TEXT_ERRORS) if args.input == "-" else args.input,
            sys.stdout if args.output == "-" else args.output,
            smiles_column=args.smiles_column,
            prefix=args.prefix,
        )
    frame = predictor.predict(args.smiles)
    if args.output == "-":
        print(_table(frame, predictor.column_units))
    else:
        with open_output(args.output) as out:
            write_csv(frame, out)
    return PredictionSummary.count(frame["valid"].to_numpy(), frame["in_domain"].to_numpy())


def _check_standard_streams(args: argparse.Namespace) -> None:
    """A closed stdin or stdout (``<&-``, ``>&-``) asked for is an error, not an empty input or
    predictions written nowhere."""
    from molmtl.predict import PredictorError

    for name, stream, asked in (
        ("stdin", sys.stdin, args.input),
        ("stdout", sys.stdout, args.output),
    ):
        if asked == "-" and stream is None:
            option = "--input" if name == "stdin" else "--output"
            raise PredictorError(f"{name} is closed; name a file with {option}")


def _stdin(errors: str) -> IO[str]:
    """stdin as UTF-8 text whose undecodable bytes become lone surrogates (invalid rows, not a
    failed run)."""
    if not hasattr(sys.stdin, "buffer"):  # already a text stream (a test, an embedding program)
        return sys.stdin
    return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors=errors, newline="")


def _table(frame: pd.DataFrame, column_units: dict[str, str]) -> str:
    """The predictions as an aligned text table, units in the property headers."""
    with_units = {column: f"{column} [{unit}]" for column, unit in column_units.items() if unit}
    return frame.rename(columns=with_units).to_string(index=False, float_format=TABLE_FLOAT_FORMAT)


def _positive_int(text: str) -> int:
    """A whole number of at least 1; the upper limits are the Predictor's (one place)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
