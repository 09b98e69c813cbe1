"""Predictor.load on damaged or hostile run directories: clear errors, nothing executed."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest

from molmtl.featurizers import FeaturizerSpecError
from molmtl.models import RunDirError
from molmtl.predict import Predictor


class CreatesMarker:
    """Unpickling this object runs ``os.system`` (here: creating a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def rewrite_config(run_dir: Path, change) -> None:
    """Edit config.json as in a run written before settings checksums (they would catch it
    first), so that the checks behind them are reached."""
    path = run_dir / "config.json"
    config = json.loads(path.read_text())
    config.pop("settings_sha256", None)
    change(config)
    path.write_text(json.dumps(config))


def record_checksum(run_dir: Path) -> None:
    """What an attacker who edits both files does: make the checksum match the new weights."""
    digest = hashlib.sha256((run_dir / "model.pt").read_bytes()).hexdigest()
    rewrite_config(run_dir, lambda config: config["weights"].update(sha256=digest))


def test_marker_payload_works_when_unpickled(tmp_path: Path) -> None:
    """The payload below is live: plain unpickling creates the marker."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(CreatesMarker(marker)))
    assert marker.exists()


@pytest.mark.parametrize("update_checksum", [False, True])
def test_pickled_code_in_weights_is_never_run(
    fresh_run_dir: Path, tmp_path: Path, update_checksum: bool
) -> None:
    marker = tmp_path / "pwned"
    (fresh_run_dir / "model.pt").write_bytes(pickle.dumps(CreatesMarker(marker)))
    if update_checksum:
        record_checksum(fresh_run_dir)
    with pytest.raises(RunDirError, match=r"model\.pt"):
        Predictor.load(fresh_run_dir, device="cpu")
    assert not marker.exists()


def test_files_beside_the_model_are_never_run(fresh_run_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
    for name in ("__init__.py", "model.py", "predict.py", "sitecustomize.py", "conftest.py"):
        (fresh_run_dir / name).write_text(payload)
    for name in ("checkpoint.pt", "scaler.pkl", "featurizer.pkl"):
        (fresh_run_dir / name).write_bytes(pickle.dumps(CreatesMarker(marker)))
    Predictor.load(fresh_run_dir, device="cpu").predict(["CCO"])
    assert not marker.exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda d: (d / "model.pt").write_bytes((d / "model.pt").read_bytes()[:100]),
            "modified or truncated",
        ),
        (
            lambda d: (d / "model.pt").write_bytes(b"\0" + (d / "model.pt").read_bytes()[1:]),
            "modified or truncated",
        ),
        (lambda d: (d / "model.pt").unlink(), "missing"),
        (
            lambda d: (d / "config.json").write_text((d / "config.json").read_text()[:50]),
            "not valid JSON",
        ),
        (lambda d: (d / "config.json").unlink(), "config.json is missing"),
        (lambda d: (d / "config.json").write_text("[1, 2]"), "JSON object"),
        (lambda d: rewrite_config(d, lambda c: c.update(format_version=999)), "format_version 999"),
        (lambda d: rewrite_config(d, lambda c: c.pop("targets")), "targets"),
        (lambda d: rewrite_config(d, lambda c: c.update(targets=["mu", "gap", "cv"])), "targets"),
        (
            lambda d: rewrite_config(d, lambda c: c["weights"].update(file="../model.pt")),
            "run directory",
        ),
        (lambda d: rewrite_config(d, lambda c: c["model"].update(hidden_dim=32)), "do not fit"),
    ],
)
def test_damaged_run_dir_fails_clearly(fresh_run_dir: Path, damage, message: str) -> None:
    damage(fresh_run_dir)
    with pytest.raises(RunDirError, match=message):
        Predictor.load(fresh_run_dir, device="cpu")


def test_weights_that_are_not_a_state_dict_fail_clearly(fresh_run_dir: Path) -> None:
    import torch

    torch.save({"nothing": torch.zeros(1)}, fresh_run_dir / "model.pt")
    record_checksum(fresh_run_dir)
    with pytest.raises(RunDirError, match="do not fit"):
        Predictor.load(fresh_run_dir, device="cpu")


def test_featurizer_spec_from_other_code_is_refused(fresh_run_dir: Path) -> None:
    rewrite_config(
        fresh_run_dir, lambda c: c["featurizer"].update(version=c["featurizer"]["version"] + 1)
    )
    with pytest.raises((RunDirError, FeaturizerSpecError), match="version"):
        Predictor.load(fresh_run_dir, device="cpu")


def test_missing_run_dir_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match=r"does not exist.*molmtl train"):
        Predictor.load(tmp_path / "nowhere", device="cpu")
