"""Streaming a CSV through a chunk predictor, one chunk of rows at a time.

Knows CSVs, not models: :meth:`~molmtl.predict.Predictor.predict_file` passes the function
that predicts one chunk, so this module imports nothing of the predictor's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import IO

import pandas as pd

from molmtl.predict._errors import PredictorError
from molmtl.predict._summary import PredictionSummary

#: float32 predictions round-trip exactly through 9 significant digits
CSV_FLOAT_FORMAT = "%.9g"

#: (SMILES of a chunk, the chunk's row index) → (prediction columns on that index, counts)
ChunkPredictor = Callable[[list[str], pd.Index], tuple[pd.DataFrame, PredictionSummary]]


def stream_csv(
    in_csv: str | PathLike[str] | IO[str],
    out_csv: str | PathLike[str] | IO[str],
    predict_chunk: ChunkPredictor,
    *,
    added_columns: Sequence[str],
    smiles_column: str,
    chunk_size: int,
) -> PredictionSummary:
    """Copy ``in_csv`` to ``out_csv`` with ``predict_chunk``'s columns appended to every row.

    See :meth:`Predictor.predict_file`. Memory holds one chunk of rows at a time.

    Args:
        added_columns: the names of ``predict_chunk``'s columns, checked against the input's
            before anything is written.
    """
    source = _name(in_csv)
    try:
        # text cells, no NA guessing: input columns are written back exactly as read
        reader = pd.read_csv(in_csv, chunksize=chunk_size, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise PredictorError(f"{source} is empty; expected a CSV with a header row") from None
    summary = PredictionSummary()
    with reader, _atomic_output(out_csv) as out:
        for number, chunk in enumerate(reader):
            if not isinstance(chunk.index, pd.RangeIndex):
                # pandas turns the first column into an index when rows outnumber the header
                raise PredictorError(
                    f"{source}: rows have more fields than the header {list(chunk.columns)} "
                    "(a trailing delimiter?); fix the file so no column is lost or shifted"
                )
            if number == 0:
                _check_columns(list(chunk.columns), smiles_column, added_columns, source)
            predicted, counts = predict_chunk(chunk[smiles_column].tolist(), chunk.index)
            pd.concat([chunk, predicted], axis=1).to_csv(
                out, header=number == 0, index=False, float_format=CSV_FLOAT_FORMAT
            )
            summary += counts
    return summary


def _check_columns(
    columns: list[str], smiles_column: str, added: Sequence[str], source: str
) -> None:
    if smiles_column not in columns:
        raise PredictorError(
            f"{source} has no column {smiles_column!r}; its columns are {columns}. "
            "Name the SMILES column with smiles_column= (--smiles-column)."
        )
    clashes = [name for name in added if name in columns]
    if clashes:
        raise PredictorError(
            f"{source} already has column(s) {clashes}, which the predictions would overwrite; "
            "choose another prefix= (--prefix)."
        )


@contextmanager
def _atomic_output(out_csv: str | PathLike[str] | IO[str]) -> Iterator[IO[str]]:
    """An open text stream; a path is written to a temporary sibling and renamed on success,
    so a failed run never leaves a truncated file that looks complete."""
    if not isinstance(out_csv, str | PathLike):
        yield out_csv
        return
    path = Path(out_csv)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, "w", newline="", encoding="utf-8") as out:
            yield out
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _name(source: str | PathLike[str] | IO[str]) -> str:
    if isinstance(source, str | PathLike):
        return str(source)
    return getattr(source, "name", "the input")
