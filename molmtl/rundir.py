"""The run directory: its file names, atomic writes, checksums and ``config.json``.

A run directory *is* a trained model. This module is the only place that knows its layout;
the trainer, the model loader, the predictor, ``evaluate`` and the benchmark all go through it.
It imports nothing else of molmtl (torch only when a tensor file is written), so every layer
can use it.

=====================  ==========================================================  ==========
file                   contents                                                    written by
=====================  ==========================================================  ==========
``config.json``        settings, featurizer spec, targets, versions, weights hash  models
``model.pt``           the selected weights (tensors only)                         models
``splits.json``        train / val / test indices into the dataset as loaded        training
``metrics.csv``        one row per epoch                                           training
``checkpoint.pt``      everything needed to continue bit for bit                   training
``test_metrics.json``  the selected weights' test MAE, Δm%                         training
``invalid_rows.csv``   source rows left out (row, SMILES, reason), when any           training
=====================  ==========================================================  ==========
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.pt"
SPLITS_FILE = "splits.json"
METRICS_FILE = "metrics.csv"
CHECKPOINT_FILE = "checkpoint.pt"
TEST_METRICS_FILE = "test_metrics.json"
INVALID_ROWS_FILE = "invalid_rows.csv"
#: ``molmtl plot``'s default folder and its figures
PLOTS_DIR = "plots"
PLOT_FILES = ("loss.png", "grad_norms.png", "val_mae.png", "weights.png")
#: the files molmtl writes, in the order an overwrite removes them: the checkpoint first (a
#: removal cut short cannot be resumed), the files that mark a run directory last
RUN_FILES = (
    CHECKPOINT_FILE,
    WEIGHTS_FILE,
    TEST_METRICS_FILE,
    METRICS_FILE,
    INVALID_ROWS_FILE,
    SPLITS_FILE,
    CONFIG_FILE,
)
#: ``config.json`` sections whose edits would change what the run means; their checksums are
#: recorded in ``settings_sha256`` (``train`` without the fields a resumed run may change)
SETTINGS_SECTIONS = ("model", "featurizer", "targets", "domain", "data", "train")
#: the keys of a ``splits.json`` record
SPLIT_KEYS = ("train", "val", "test")
#: TrainConfig fields that may differ between a run and its resumption (they do not change the
#: result: how long to train, where the data or the run lies, which device computes)
RESUMABLE_CHANGES = ("epochs", "progress", "out", "device", "data", "cache_dir")


class RunDirError(ValueError):
    """A run directory is missing, incomplete, tampered with, or from an incompatible version."""


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


#: a temporary sibling is ``.<name>.<pid>.tmp``: recognisable, and a later write of the same file
#: removes those whose process is gone (killed before it could clean up, e.g. by SIGKILL)
TEMPORARY_PATTERN = re.compile(r"\.(?P<name>.+)\.(?P<pid>[1-9][0-9]*)\.tmp")


def temporary_path(path: Path) -> Path:
    """The temporary sibling of ``path`` that this process writes before renaming it over."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temporaries of ``path`` (``.<name>.<pid>.tmp`` beside it) whose process no
    longer runs, and return them; those of running processes are left alone."""
    removed = []
    for candidate in Path(path).parent.glob(f".{glob.escape(Path(path).name)}.*.tmp"):
        match = TEMPORARY_PATTERN.fullmatch(candidate.name)
        if match and match["name"] == Path(path).name and not _is_running(int(match["pid"])):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _is_running(pid: int) -> bool:
    if pid == os.getpid():  # a temporary of this process: another of its writes may hold it
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process, or not a pid at all
        return True
    return True


@contextmanager
def atomic_open(path: Path, mode: str = "w", **options: Any) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing (``open``'s ``mode`` and ``options``);
    rename it over ``path`` when the block ends, flushed to disk.

    A reader sees the old file or the new one, never half of one. On any exception, Ctrl-C
    (KeyboardInterrupt) or SIGTERM (while the default SIGTERM action is in force, it exits via
    ``SystemExit``) the temporary is removed; stale temporaries of dead processes are removed
    first. An ``OSError`` of opening, flushing or renaming is raised again naming ``path``
    (errors raised inside the block pass unchanged: they may concern other files).
    """
    path = Path(path)
    temporary = temporary_path(path)
    try:
        with _sigterm_as_exit():
            remove_stale_temporaries(path)
            with naming_errors(path):
                file = open(temporary, mode, **options)  # noqa: SIM115 (closed below)
            with file:
                yield file
                with naming_errors(path):
                    file.flush()
                    os.fsync(file.fileno())
            with naming_errors(path):
                os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def naming_errors(path: Path) -> Iterator[None]:
    """An ``OSError`` inside the block is raised again as a one-line OSError that names
    ``path``, the file being written (a temporary's name would only confuse)."""
    try:
        yield
    except OSError as error:
        if error.errno is None:
            raise OSError(f"cannot write {path}: {error}") from error
        raise OSError(error.errno, f"cannot write {path}: {error.strerror}") from error


@contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """SIGTERM raises ``SystemExit(143)`` inside the block, so ``finally`` clauses run; only in
    the main thread and where nobody has set a SIGTERM handler (a CLI, a framework)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Terminated(SystemExit):
    """SIGTERM arrived. A ``SystemExit`` with the default action's status (143), so no
    ``except Exception`` swallows it and every ``finally`` on the way out runs."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def exit_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM handler: raise :class:`Terminated`, so clean-up runs before the exit."""
    raise Terminated


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) atomically to ``path``: see :func:`atomic_open`.

    Raises:
        OSError: the write failed (e.g. a full disk); the message names ``path``, and no
            temporary file is left behind.
    """
    with atomic_open(path, "w", encoding="utf-8") as file, naming_errors(path):
        file.write(text)


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` atomically, as :func:`atomic_write_text`."""
    import torch

    # through a file object, so the archive's inner folder is "archive" whatever the
    # temporary's name: the same tensors give the same bytes (and checksum)
    with atomic_open(path, "wb") as file, naming_errors(path):
        torch.save(obj, file)


def read_json(path: Path) -> Any:
    """A JSON file, or :class:`RunDirError` naming it when it is missing or does not parse."""
    if not path.is_file():
        raise RunDirError(f"{path} is missing")
    try:
        return json.loads(path.read_text())
    except (ValueError, RecursionError) as error:  # bad JSON or text, or nested too deep
        raise RunDirError(f"{path} is not valid JSON: {error}") from error
    except OSError as error:
        raise RunDirError(f"cannot read {path}: {error.strerror or error}") from error


class RunDir:
    """The files of one run directory.

    Args:
        path: the directory (it need not exist yet).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS_FILE

    @property
    def checkpoint_path(self) -> Path:
        return self.path / CHECKPOINT_FILE

    @property
    def splits_path(self) -> Path:
        return self.path / SPLITS_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def test_metrics_path(self) -> Path:
        return self.path / TEST_METRICS_FILE

    def has_checkpoint(self) -> bool:
        return self.checkpoint_path.is_file()

    @property
    def invalid_rows_path(self) -> Path:
        return self.path / INVALID_ROWS_FILE

    def read_config(self) -> dict[str, Any]:
        """``config.json`` as a dict, refused when its settings no longer match their recorded
        checksums (``settings_sha256``; run directories written before it are not checked)."""
        if not self.path.is_dir():
            raise RunDirError(
                f"run directory {self.path} does not exist (train one with `molmtl train`)"
            )
        if not self.config_path.is_file():
            raise RunDirError(
                f"{self.config_path} is missing: {self.path} is not a molmtl run directory"
            )
        config = read_json(self.config_path)
        if not isinstance(config, dict):
            raise RunDirError(f"{self.config_path} must hold a JSON object")
        recorded = config.get("settings_sha256")
        if recorded is None:
            return config
        if not isinstance(recorded, dict):
            raise RunDirError(
                f"{self.config_path}: 'settings_sha256' must map sections to checksums"
            )
        edited = [k for k, v in settings_checksums(config).items() if recorded.get(k) != v]
        if edited:
            raise RunDirError(
                f"{self.config_path} was edited after training: its {edited} section(s) no longer "
                "match their recorded checksums (settings_sha256); restore the file or train again"
            )
        return config

    def read_train_settings(self) -> dict[str, Any]:
        """The ``train`` section of ``config.json``: the TrainConfig fields of the run."""
        settings = self.read_config().get("train")
        if not isinstance(settings, dict):
            raise RunDirError(
                f"{self.config_path} lacks the training settings ('train'); "
                "was it written by `molmtl train`?"
            )
        return settings

    #: the TrainConfig fields a resumed run may change
    resumable_changes = RESUMABLE_CHANGES

    def changed_settings(self, settings: dict[str, Any]) -> list[str]:
        """The TrainConfig ``settings`` (field → value) that differ from the stored run's, apart
        from those a resumed run may change: what resuming with them would alter."""
        stored = self.read_train_settings()
        return sorted(
            key
            for key in settings
            if key not in RESUMABLE_CHANGES and stored.get(key) != settings[key]
        )

    def write_splits(self, splits: dict[str, Any]) -> None:
        # one line: a QM9 split holds 130,831 indices
        atomic_write_text(self.splits_path, json.dumps(splits) + "\n")

    def read_splits(self) -> dict[str, Any]:
        return read_json(self.splits_path)

    def write_metrics(self, columns: list[str], rows: list[dict[str, Any]]) -> None:
        """Rewrite ``metrics.csv`` whole: the header ``columns``, then one line per row."""
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.metrics_path, text.getvalue())

    def write_test_metrics(self, report: dict[str, Any]) -> None:
        atomic_write_json(self.test_metrics_path, report)

    def read_test_metrics(self) -> dict[str, Any]:
        return read_json(self.test_metrics_path)

    def write_invalid_rows(self, rows: list[dict[str, Any]]) -> None:
        """``invalid_rows.csv``: one line (``row``, ``smiles``, ``reason``) per source row left out."""
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=["row", "smiles", "reason"])
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.invalid_rows_path, text.getvalue())

    def is_run(self) -> bool:
        """Whether a molmtl run (or the start of one) lies here: a ``config.json`` or
        ``splits.json`` that molmtl wrote."""
        for path, keys in ((self.config_path, ("format_version",)), (self.splits_path, SPLIT_KEYS)):
            try:
                value = read_json(path)
            except RunDirError:
                continue
            if isinstance(value, dict) and all(key in value for key in keys):
                return True
        return False

    def molmtl_files(self) -> list[Path]:
        """The files of this directory that molmtl writes: the default plots, then
        :data:`RUN_FILES` in order, each after the temporaries a cut write left of it."""
        if not self.path.is_dir():
            return []
        plots = self.path / PLOTS_DIR
        found = [plots / name for name in PLOT_FILES if (plots / name).is_file()]
        for name in RUN_FILES:
            found += sorted(self.path.glob(f".{name}.*.tmp"))
            found += [self.path / name] if (self.path / name).is_file() else []
        return found

    def clear(self) -> list[Path]:
        """Remove the files molmtl wrote here (:meth:`molmtl_files`); return what is left (files
        molmtl did not write), which stays untouched."""
        for path in self.molmtl_files():
            path.unlink(missing_ok=True)
        plots = self.path / PLOTS_DIR
        if plots.is_dir() and not any(plots.iterdir()):
            plots.rmdir()
        return sorted(self.path.iterdir()) if self.path.is_dir() else []


def settings_checksums(config: dict[str, Any]) -> dict[str, str]:
    """SHA-256 of each of ``config.json``'s :data:`SETTINGS_SECTIONS` (canonical JSON)."""
    sections = {key: config.get(key) for key in SETTINGS_SECTIONS}
    if isinstance(sections["train"], dict):
        sections["train"] = {
            k: v for k, v in sections["train"].items() if k not in RESUMABLE_CHANGES
        }
    return {
        key: hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()
        for key, value in sections.items()
    }
