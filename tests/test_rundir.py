"""The run directory's writes: atomic, nothing left behind, reproducible bytes."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from molmtl.rundir import (
    RunDir,
    RunDirError,
    atomic_torch_save,
    atomic_write_text,
    remove_stale_temporaries,
    sha256_of,
    temporary_path,
)

REPO = Path(__file__).resolve().parents[1]


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


def _some_run(path):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"format_version": 1}))
    for name in ("model.pt", "checkpoint.pt", "metrics.csv", "splits.json", "invalid_rows.csv"):
        (path / name).write_text("x")
    (path / ".model.pt.77.tmp").write_text("cut short")
    (path / "plots").mkdir()
    (path / "plots" / "val_mae.png").write_text("x")


def test_clear_removes_what_molmtl_wrote_and_nothing_else(tmp_path):
    run = RunDir(tmp_path / "run")
    _some_run(run.path)
    (run.path / "notes.md").write_text("mine")
    (run.path / "plots" / "mine.png").write_text("mine")
    assert run.molmtl_files()[-1] == run.config_path  # what marks a run goes last
    assert [p.name for p in run.clear()] == ["notes.md", "plots"]
    assert [p.name for p in (run.path / "plots").iterdir()] == ["mine.png"]


def test_a_cleared_run_leaves_no_folder_of_its_own(tmp_path):
    run = RunDir(tmp_path / "run")
    _some_run(run.path)
    assert run.is_run() and run.clear() == [] and not run.is_run()


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"config.json": {"format_version": 1}}, True),
        ({"splits.json": {"train": [], "val": [], "test": []}}, True),
        ({"config.json": {"name": "my own config"}}, False),
        ({"metrics.csv": "epoch\n1\n"}, False),
        ({"config.json": "[" * 100_000}, False),  # nested beyond the parser's recursion
    ],
)
def test_is_run_recognises_only_molmtl_files(tmp_path, files, expected):
    for name, content in files.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (tmp_path / name).write_text(text)
    assert RunDir(tmp_path).is_run() is expected


def test_deeply_nested_json_is_a_run_dir_error(tmp_path):
    (tmp_path / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RunDirError, match="not valid JSON"):
        RunDir(tmp_path).read_config()


def test_invalid_rows_are_written_as_csv(tmp_path):
    run = RunDir(tmp_path)
    run.write_invalid_rows([{"row": 3, "smiles": "C1C,C", "reason": "unclosed ring"}])
    assert run.invalid_rows_path.read_text().splitlines() == [
        "row,smiles,reason",
        '3,"C1C,C",unclosed ring',
    ]


def test_plot_files_are_those_plot_writes():
    from molmtl.rundir import PLOT_FILES
    from molmtl.training.plots import FIGURES

    assert set(PLOT_FILES) == set(FIGURES)


def test_a_full_disk_mid_write_leaves_no_temporary_and_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    atomic_torch_save({"w": torch.zeros(2)}, path)
    old = path.read_bytes()

    def save_until_full(obj, file):
        file.write(b"PK" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save_until_full)
    with pytest.raises(OSError, match=f"cannot write {path}: No space left") as error:
        atomic_torch_save({"w": torch.ones(2)}, path)
    assert "\n" not in str(error.value) and ".tmp" not in str(error.value)
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_a_missing_directory_is_named_not_the_temporary(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"cannot write {tmp_path / 'gone' / 'a.json'}"):
        atomic_write_text(tmp_path / "gone" / "a.json", "{}")


def test_temporaries_of_dead_processes_are_removed_those_of_live_ones_kept(tmp_path):
    path = tmp_path / "model.pt"
    dead = tmp_path / f".model.pt.{2**22 + 7}.tmp"  # above Linux's largest pid: never running
    live = tmp_path / f".model.pt.{os.getppid()}.tmp"
    own = temporary_path(path)
    unrelated = tmp_path / f".model.pt.backup.{2**22 + 7}.tmp"
    for stray in (dead, live, own, unrelated):
        stray.write_text("partial")
    assert remove_stale_temporaries(path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (live, own, unrelated)
    )
    assert own.name == f".model.pt.{os.getpid()}.tmp"


@pytest.mark.parametrize(
    ("sent", "status"), [(signal.SIGTERM, 128 + signal.SIGTERM), (signal.SIGINT, -signal.SIGINT)]
)
def test_a_signal_mid_write_removes_the_temporary(tmp_path, sent, status):
    path = tmp_path / "metrics.csv"
    script = (
        # a shell starts background jobs with SIGINT ignored: restore Python's Ctrl-C handler
        "import signal, sys, time\nfrom molmtl.rundir import atomic_open\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        f"with atomic_open({str(path)!r}) as file:\n"
        "    file.write('half')\n    print('writing', flush=True)\n    time.sleep(30)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert child.stdout.readline() == b"writing\n"
    assert any(tmp_path.iterdir())  # the temporary exists while it writes
    child.send_signal(sent)
    assert child.wait(timeout=20) == status
    assert list(tmp_path.iterdir()) == []
