"""Streaming a CSV through a chunk predictor, one chunk of rows at a time.

Knows CSVs, not models: :meth:`~molmtl.predict.Predictor.predict_file` passes the function
that predicts one chunk, so this module imports nothing of the predictor's.
"""

from __future__ import annotations

import csv
import lzma
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from os import PathLike
from typing import IO

import pandas as pd

from molmtl.predict._errors import PredictorError
from molmtl.predict._output import TEXT_ERRORS, check_output, open_output
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

    See :meth:`Predictor.predict_file`. Memory holds one chunk of rows at a time. An output
    path is checked before the input is read (:func:`~molmtl.predict._output.check_output`).

    Args:
        added_columns: the names of ``predict_chunk``'s columns, checked against the input's
            before anything is written.

    Raises:
        PredictorError: the output cannot be written there, the input cannot be read (missing,
            empty, malformed, a damaged or unsupported compressed file), a column is missing
            or would be overwritten; one line that names the file.
    """
    source = _name(in_csv)
    if isinstance(out_csv, str | PathLike):
        check_output(out_csv)
    with _reading(source):
        # text cells, no NA guessing: input columns are written back exactly as read, bytes
        # that are not UTF-8 included (one such cell is one invalid row, not a failed run)
        reader = pd.read_csv(
            in_csv,
            chunksize=chunk_size,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8",
            encoding_errors=TEXT_ERRORS,
        )
    summary = PredictionSummary()
    with reader, open_output(out_csv) as out:
        for number, chunk in enumerate(_chunks(reader, source)):
            if not isinstance(chunk.index, pd.RangeIndex):
                # pandas turns the first column into an index when rows outnumber the header
                raise PredictorError(
                    f"{source}: rows have more fields than the header {_listed(chunk.columns)} "
                    "(a trailing delimiter?); fix the file so no column is lost or shifted"
                )
            if number == 0:
                _check_columns(list(chunk.columns), smiles_column, added_columns, source)
            predicted, counts = predict_chunk(chunk[smiles_column].tolist(), chunk.index)
            write_csv(pd.concat([chunk, predicted], axis=1), out, header=number == 0)
            summary += counts
    return summary


def write_csv(frame: pd.DataFrame, out: IO[str], *, header: bool = True) -> None:
    """``frame`` as CSV rows (no index, floats as :data:`CSV_FLOAT_FORMAT`) into ``out``.

    A cell holding a carriage return is written unquoted by Python's csv module (3.11), which
    would split its row in two when read back; a frame with one is written all quoted.
    """
    texts = frame.select_dtypes(exclude=["number", "bool"])
    has_return = any("\r" in str(name) for name in frame.columns) or any(
        texts.iloc[:, position].map(lambda value: isinstance(value, str) and "\r" in value).any()
        for position in range(texts.shape[1])
    )
    frame.to_csv(
        out,
        header=header,
        index=False,
        float_format=CSV_FLOAT_FORMAT,
        quoting=csv.QUOTE_ALL if has_return else csv.QUOTE_MINIMAL,
    )


def _chunks(reader: Iterator[pd.DataFrame], source: str) -> Iterator[pd.DataFrame]:
    """The reader's chunks; a read error (also one deep inside a compressed file) as one line."""
    while True:
        with _reading(source):
            chunk = next(reader, None)
        if chunk is None:
            return
        yield chunk


@contextmanager
def _reading(source: str) -> Iterator[None]:
    """Errors of reading ``source`` as one :class:`PredictorError` line naming it."""
    try:
        yield
    except pd.errors.EmptyDataError:
        raise PredictorError(f"{source} is empty; expected a CSV with a header row") from None
    except _READ_ERRORS as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        first_line = reason.strip().splitlines()[0] if reason.strip() else type(error).__name__
        raise PredictorError(f"cannot read {source}: {first_line}") from error


#: what reading a CSV raises: the file system, pandas' parser, a damaged or unsupported
#: compressed file (truncated: EOFError; not that format: BadGzipFile, LZMAError, BadZipFile,
#: zlib.error; a ZIP of several files: ValueError; .zst without zstandard: ImportError)
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    ImportError,
    lzma.LZMAError,
    zipfile.BadZipFile,
    zlib.error,
    tarfile.TarError,
)


def _check_columns(
    columns: list[str], smiles_column: str, added: Sequence[str], source: str
) -> None:
    if smiles_column not in columns:
        raise PredictorError(
            f"{source} has no column {smiles_column!r}; its columns are {_listed(columns)}. "
            "Name the SMILES column with smiles_column= (--smiles-column)."
        )
    clashes = [name for name in added if name in columns]
    if clashes:
        raise PredictorError(
            f"{source} already has column(s) {clashes}, which the predictions would overwrite; "
            "choose another prefix= (--prefix)."
        )


def _name(source: str | PathLike[str] | IO[str]) -> str:
    if isinstance(source, str | PathLike):
        return str(source)
    return getattr(source, "name", "the input")


def _listed(columns: Iterable[object], shown: int = 20, width: int = 40) -> str:
    """Column names for a message: the first ``shown``, each cut to ``width`` characters."""
    names = [str(name) for name in columns]
    cut = [name if len(name) <= width else name[: width - 1] + "…" for name in names[:shown]]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{cut}{more}"
