"""The run directory's writes: atomic, nothing left behind, reproducible bytes."""

from __future__ import annotations

import hashlib

import pytest
import torch

from molmtl.rundir import RunDir, RunDirError, atomic_torch_save, atomic_write_text, sha256_of


def test_the_same_tensors_give_the_same_bytes_wherever_written(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    atomic_torch_save(state, tmp_path / "a.pt")
    atomic_torch_save(state, tmp_path / "b.pt")
    assert sha256_of(tmp_path / "a.pt") == sha256_of(tmp_path / "b.pt")
    assert torch.equal(torch.load(tmp_path / "a.pt", weights_only=True)["w"], state["w"])


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    atomic_write_text(path, "old")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", full_disk)
    with pytest.raises(OSError, match="No space"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_changed_settings_ignore_what_a_resume_may_change(tmp_path):
    run_dir = RunDir(tmp_path)
    atomic_write_text(run_dir.config_path, '{"train": {"lr": 0.001, "epochs": 3, "seed": 0}}')
    assert run_dir.changed_settings({"lr": 0.001, "epochs": 30, "seed": 0}) == []
    assert run_dir.changed_settings({"lr": 0.01, "epochs": 3, "seed": 1}) == ["lr", "seed"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "is missing"),
        ("{not json", "not valid JSON"),
        ("[1]", "JSON object"),
        ("{}", "'train'"),
    ],
)
def test_unreadable_settings_name_the_file(tmp_path, content, message):
    run_dir = RunDir(tmp_path)
    if content is not None:
        run_dir.config_path.write_text(content)
    with pytest.raises(RunDirError, match=message):
        run_dir.read_train_settings()


def test_metrics_csv_is_written_whole(tmp_path):
    run_dir = RunDir(tmp_path)
    run_dir.write_metrics(
        ["epoch", "loss"], [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}]
    )
    assert run_dir.metrics_path.read_text().splitlines() == ["epoch,loss", "1,0.5", "2,0.25"]
    digest = hashlib.sha256(run_dir.metrics_path.read_bytes()).hexdigest()
    run_dir.write_metrics(
        ["epoch", "loss"], [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}]
    )
    assert hashlib.sha256(run_dir.metrics_path.read_bytes()).hexdigest() == digest
