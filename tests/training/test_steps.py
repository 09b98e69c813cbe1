"""The steps of a training run, each on its own: prepare, fit, select, log, test."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

from molmtl.training import (
    EpochMeans,
    MetricsLog,
    ModelSelection,
    RunState,
    TrainConfig,
    evaluate_selected_model,
    fit,
    prepare_run,
    restore_checkpoint,
    start,
    train,
)
from molmtl.training.trainer import EpochRecord


def _record(epoch: int, score: float, n_tasks: int = 3) -> EpochRecord:
    values = torch.arange(1.0, n_tasks + 1)
    return EpochRecord(
        epoch=epoch,
        lr=1e-3,
        val_score=score,
        seconds=0.5,
        means=EpochMeans(values, values / 10, values * 10, torch.full((n_tasks,), 4.0)),
        val_mae=values * 2,
        probe_grad_norm=None,
    )


def test_the_steps_give_what_train_gives(make_config, tmp_path):
    expected = json.loads((train(make_config()) / "test_metrics.json").read_text())
    run = prepare_run(make_config(out=str(tmp_path / "steps")))
    state = fit(run, start(run))
    assert state.epoch == 2 and len(state.history) == 2
    assert evaluate_selected_model(run, state) == expected


def test_model_selection_saves_only_improvements(make_config):
    run = prepare_run(make_config())
    selection, state = ModelSelection(run), start(run)
    assert json.loads(run.run_dir.config_path.read_text())["best_epoch"] == 0
    assert selection.update(state, _record(1, 0.5))
    assert not selection.update(state, _record(2, 0.7))
    assert not selection.update(state, _record(3, 0.5))  # a tie keeps the earlier epoch
    assert (state.best_epoch, state.best_score) == (1, 0.5)
    stored = json.loads(run.run_dir.config_path.read_text())
    assert (stored["best_epoch"], stored["val_score"]) == (1, 0.5)


def test_metrics_log_names_every_task_column(tmp_path, make_config):
    run = prepare_run(make_config())
    log = MetricsLog(run.run_dir, ["mu", "homo", "r2"], probe=True)
    record = _record(1, 0.5)
    record.probe_grad_norm = torch.tensor([0.1, 0.2, 0.3])
    log.write([log.row(record)])
    frame = pd.read_csv(run.run_dir.metrics_path)
    assert list(frame.columns) == log.columns
    assert frame["weight/homo"][0] == pytest.approx(0.2)
    assert frame["probe_grad_norm/r2"][0] == pytest.approx(0.3)
    assert frame["train_loss"][0] == pytest.approx(2.0)  # mean over tasks


def test_a_checkpoint_restores_the_run_state(make_config):
    config = make_config()
    train(config)
    run = prepare_run(config.replace(epochs=3), resume=True)
    state = restore_checkpoint(run)
    assert isinstance(state, RunState) and state.epoch == 2 and len(state.history) == 2
    assert math.isfinite(state.best_score) and state.best_epoch in (1, 2)


def test_the_gradient_probe_logs_norms_and_changes_nothing(make_config, tmp_path):
    plain = json.loads((train(make_config()) / "test_metrics.json").read_text())
    probed_dir = train(make_config(gradient_probe=16, out=str(tmp_path / "probed")))
    assert json.loads((probed_dir / "test_metrics.json").read_text()) == plain
    norms = pd.read_csv(probed_dir / "metrics.csv").filter(like="probe_grad_norm/")
    assert norms.shape == (2, 3) and (norms > 0).all().all()


def test_resume_takes_the_stored_settings(make_config):
    config = make_config()
    train(config)
    resumed = TrainConfig.from_run(config.out, {"epochs": 3})
    assert resumed.replace(epochs=2) == config
    run_dir = train(resumed, resume=True)
    assert len(pd.read_csv(run_dir / "metrics.csv")) == 3
