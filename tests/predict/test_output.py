"""Output paths: checked before any work, regular files written atomically (through links),
FIFOs and devices streamed into, never replaced; no temporary left behind on failure."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import threading
from pathlib import Path

import pytest

from molmtl.predict import PredictorError, check_output, open_output
from molmtl.predict._output import TEXT_ERRORS


def write(out: str | Path, text: str = "a,b\n1,2\n") -> None:
    with open_output(out) as stream:
        stream.write(text)


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "the output path is empty"),
        (".", "it is a directory"),
        ("..", "it is a directory"),
        ("folder", "it is a directory"),
        ("folder/", "it is a directory"),
        ("missing/", "names a directory"),
        ("missing/out.csv", "does not exist"),
        ("file.csv/out.csv", "Not a directory"),
        ("out.csv.zip", "not .zip"),
        ("out.csv.zst", "not .zst"),
        ("bad\0name.csv", "NUL"),
    ],
)
def test_impossible_outputs_are_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.csv").write_text("keep\n")
    with pytest.raises(PredictorError, match=message) as error:
        check_output(name)
    assert "\n" not in str(error.value)
    with pytest.raises(PredictorError):
        write(name)
    assert (tmp_path / "file.csv").read_text() == "keep\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.csv", "folder"]


def test_a_link_to_a_file_stays_a_link_and_its_target_is_written(tmp_path: Path) -> None:
    target = tmp_path / "data" / "real.csv"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    write(link)
    assert link.is_symlink() and link.resolve() == target
    assert target.read_text() == "a,b\n1,2\n"
    assert leftovers(tmp_path) == [] and leftovers(target.parent) == []


def test_a_dangling_link_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "new.csv")
    write(link)
    assert link.is_symlink() and (tmp_path / "new.csv").read_text() == "a,b\n1,2\n"


def test_a_fifo_is_written_into_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    assert check_output(fifo).streamed
    write(fifo)
    reader.join(timeout=10)
    assert received == [b"a,b\n1,2\n"]
    assert fifo.is_fifo() and leftovers(tmp_path) == []


def test_dev_null_stays_a_device() -> None:
    assert check_output("/dev/null").streamed
    write("/dev/null")
    assert Path("/dev/null").is_char_device()


def test_a_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    out.write_text("old\n")
    with pytest.raises(RuntimeError), open_output(out) as stream:
        stream.write("half")
        raise RuntimeError("the model failed")
    assert out.read_text() == "old\n" and leftovers(tmp_path) == []


def test_a_stale_temporary_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    dead = tmp_path / f".out.csv.{2**22 + 12345}.tmp"  # above Linux's largest pid
    alive = tmp_path / f".out.csv.{os.getppid()}.tmp"
    other = tmp_path / f".other.csv.{2**22 + 12345}.tmp"
    for path in (dead, alive, other):
        path.write_text("partial")
    write(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name, "out.csv"])


@pytest.mark.parametrize(
    ("suffix", "opener"), [(".gz", gzip.open), (".bz2", bz2.open), (".xz", lzma.open)]
)
def test_compressed_names_are_compressed(tmp_path: Path, suffix: str, opener) -> None:
    out = tmp_path / f"out.csv{suffix}"
    write(out)
    with opener(out, "rt") as stream:
        assert stream.read() == "a,b\n1,2\n"


def test_gzip_bytes_are_reproducible(tmp_path: Path) -> None:
    write(tmp_path / "a.csv.gz")
    write(tmp_path / "b.csv.gz")
    assert (tmp_path / "a.csv.gz").read_bytes() == (tmp_path / "b.csv.gz").read_bytes()


@pytest.mark.parametrize(("denied", "message"), [("out.csv", "read-only"), ("", "no permission")])
def test_unwritable_places_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, denied: str, message: str
) -> None:
    out = tmp_path / "out.csv"
    out.write_text("old\n")
    real_access = os.access
    # as if not writable (root may write anywhere, so the mode bits alone would not tell)
    monkeypatch.setattr(
        os, "access", lambda path, mode: Path(path) != tmp_path / denied and real_access(path, mode)
    )
    with pytest.raises(PredictorError, match=message):
        check_output(out)
    assert out.read_text() == "old\n"


def test_undecodable_bytes_go_out_as_they_came_in(tmp_path: Path) -> None:
    raw = "smiles\nC\xffC\n".encode("latin-1")  # 0xff is not UTF-8
    text = raw.decode("utf-8", errors=TEXT_ERRORS)
    assert text == "smiles\nC\udcffC\n"
    out = tmp_path / "out.csv"
    write(out, text + "\ud800\n")  # a surrogate no byte maps to: escaped, never a crash
    assert out.read_bytes() == raw + b"\\ud800\n"
