"""Where predictions go: a path the user named, checked before any work, written safely.

A regular file (or a symbolic link to one) is written atomically: to a temporary sibling of the
real file, renamed over it at the end (a link stays a link). A FIFO or a character device
(``/dev/null``, ``/dev/stdout``, a pipe) is written straight into, streaming: renaming onto it
would replace it with a regular file. Anything else is refused with one line, before any work.
``.gz``, ``.bz2`` and ``.xz`` names are compressed, as pandas reads them.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import lzma
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import IO

from molmtl.predict._errors import PredictorError
from molmtl.rundir import atomic_open, naming_errors

#: codec error handler of every text molmtl reads or writes: bytes that are not UTF-8 come in
#: as lone surrogates (``surrogateescape``, so one bad cell is one invalid row, not a failed
#: run) and go out as the same bytes; a surrogate no byte maps to is written as ``\\udxxx``
TEXT_ERRORS = "molmtl-bytes"

_COMPRESSORS: dict[str, Callable[[IO[bytes]], IO[bytes]]] = {
    ".gz": lambda raw: gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename=""),
    ".bz2": lambda raw: bz2.BZ2File(raw, "wb"),
    ".xz": lambda raw: lzma.LZMAFile(raw, "wb"),  # noqa: SIM115 (closed by open_output)
}
#: compressed formats pandas reads but molmtl does not write (they need an archive member
#: name, or a package that may be missing)
_UNWRITTEN = (".zip", ".zst", ".tar", ".tgz")


def _bytes_or_escape(error: UnicodeError) -> tuple[str | bytes, int]:
    if not isinstance(error, UnicodeEncodeError):
        return codecs.lookup_error("surrogateescape")(error)
    char = error.object[error.start]
    if "\udc80" <= char <= "\udcff":
        return bytes([ord(char) - 0xDC00]), error.start + 1
    return f"\\u{ord(char):04x}", error.start + 1


codecs.register_error(TEXT_ERRORS, _bytes_or_escape)


@dataclass(frozen=True)
class OutputTarget:
    """A checked output path: ``path`` is the file to replace atomically (a link's target), or
    the FIFO / device to write straight into (``streamed``)."""

    path: Path
    streamed: bool

    @property
    def compressor(self) -> Callable[[IO[bytes]], IO[bytes]] | None:
        return _COMPRESSORS.get(self.path.suffix.lower())


def check_output(out: str | PathLike[str]) -> OutputTarget:
    """Where ``out`` would be written, or :class:`PredictorError` saying why it cannot be, in
    one line: empty, a directory, a missing directory, not writable, a block device or socket,
    a compression molmtl does not write."""
    text = os.fspath(out)
    if not text:
        raise PredictorError("the output path is empty; name a file, or '-' for stdout")
    try:
        mode = os.stat(text).st_mode  # follows links: what a write would reach
    except FileNotFoundError:
        mode = None
    except OSError as error:  # a link loop, a component that is not a directory, ...
        raise PredictorError(f"cannot write {text!r}: {error.strerror}") from None
    except ValueError:  # a NUL character: no file has that name
        raise PredictorError(f"cannot write {text!r}: a path cannot hold a NUL character") from None
    real = Path(os.path.realpath(text))
    if mode is not None and (
        stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or real.parts[1:2] == ("proc",)
    ):
        return OutputTarget(Path(text), streamed=True)  # /dev/stdout, a pipe, /dev/fd/N
    if mode is not None and not stat.S_ISREG(mode):
        kind = (
            "a directory" if stat.S_ISDIR(mode) else "not a regular file, FIFO or character device"
        )
        raise PredictorError(f"cannot write {text!r}: it is {kind}; name a file")
    if text.endswith(os.sep) or os.path.basename(text) in ("", ".", ".."):
        raise PredictorError(f"cannot write {text!r}: it names a directory; name a file")
    if real.suffix.lower() in _UNWRITTEN:
        raise PredictorError(
            f"cannot write {text!r}: molmtl writes CSV plain or as .gz, .bz2, .xz, not {real.suffix}"
        )
    _check_writable(text, real, exists=mode is not None)
    return OutputTarget(real, streamed=False)


def _check_writable(text: str, real: Path, *, exists: bool) -> None:
    if not real.parent.is_dir():
        raise PredictorError(
            f"cannot write {text!r}: directory {str(real.parent)!r} does not exist"
        )
    if not os.access(real.parent, os.W_OK | os.X_OK):
        raise PredictorError(
            f"cannot write {text!r}: no permission to write in {str(real.parent)!r}"
        )
    if exists and not os.access(real, os.W_OK):
        raise PredictorError(f"cannot write {text!r}: the file is read-only")


@contextmanager
def open_output(out: str | PathLike[str] | IO[str]) -> Iterator[IO[str]]:
    """A text stream (UTF-8, :data:`TEXT_ERRORS`) into ``out``: a path checked by
    :func:`check_output` and written atomically or streamed as it says; a text stream is
    yielded as it is. A failed run leaves no output file and no temporary."""
    if not isinstance(out, str | PathLike):
        yield out
        return
    target = check_output(out)
    with ExitStack() as stack:
        if target.streamed:
            with naming_errors(target.path):
                raw = stack.enter_context(open(target.path, "wb"))
        else:
            raw = stack.enter_context(atomic_open(target.path, "wb"))
        binary = stack.enter_context(target.compressor(raw)) if target.compressor else raw
        text = io.TextIOWrapper(binary, encoding="utf-8", errors=TEXT_ERRORS, newline="")
        try:
            yield text
            with naming_errors(target.path):
                text.flush()
        finally:
            text.detach()  # the stack closes the byte streams, innermost first
