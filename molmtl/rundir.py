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
=====================  ==========================================================  ==========
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.pt"
SPLITS_FILE = "splits.json"
METRICS_FILE = "metrics.csv"
CHECKPOINT_FILE = "checkpoint.pt"
TEST_METRICS_FILE = "test_metrics.json"
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


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``.

    A reader sees the old file or the new one, never half of one; a failed write (a full disk)
    leaves no temporary file behind.
    """
    temporary = _temporary(Path(path))
    try:
        temporary.write_text(text)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, json.dumps(value, indent=2) + "\n")


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` atomically, as :func:`atomic_write_text`."""
    import torch

    temporary = _temporary(Path(path))
    try:
        # through a file object, so the archive's inner folder is "archive" whatever the
        # temporary's name: the same tensors give the same bytes (and checksum)
        with open(temporary, "wb") as file:
            torch.save(obj, file)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_json(path: Path) -> Any:
    """A JSON file, or :class:`RunDirError` naming it when it is missing or does not parse."""
    if not path.is_file():
        raise RunDirError(f"{path} is missing")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunDirError(f"{path} is not valid JSON: {error}") from error


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

    def read_config(self) -> dict[str, Any]:
        """``config.json`` as a dict (no checks beyond being a JSON object)."""
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
