"""Data-parallel training: two gloo ranks on 127.0.0.1 equal one process on the global batches.

The labels have holes and the global batch (25) splits unevenly (12 + 13), so the ranks' masked
means only combine correctly through reduced error sums and label counts.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from molmtl.training import TrainConfig, train
from tests.training.conftest import TARGETS, TINY_MODEL

WORLD_SIZE = 2
#: dbmtl and one method of each family: loss weighting (stateless, learnable), gradient
METHODS = ["dbmtl", "ew", "uw", "pcgrad"]


def _settings(data: Path, out: Path, **changes) -> dict:
    settings = {
        "dataset": "csv",
        "data": str(data),
        "targets": TARGETS,
        "split": "random",
        "model": dict(TINY_MODEL),
        "epochs": 1,
        "batch_size": 25,
        "eval_batch_size": 7,
        "lr": 3e-3,
        "device": "cpu",
        "progress": False,
        "out": str(out),
    }
    return {**settings, **changes}


@pytest.fixture(scope="module")
def holey_csv(qm9_csv, tmp_path_factory) -> Path:
    """The small QM9 CSV with a quarter of each target's labels missing."""
    frame = pd.read_csv(qm9_csv)
    holes = np.random.default_rng(0).random((len(frame), len(TARGETS))) < 0.25
    frame[TARGETS] = frame[TARGETS].mask(holes)
    path = tmp_path_factory.mktemp("holey") / "holey.csv"
    frame.to_csv(path, index=False)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, port: int, runs: list[dict], fail_at_step: int | None) -> None:
    """One rank as torchrun starts it: the environment says where the others are."""
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD_SIZE),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        MOLMTL_DISTRIBUTED_TIMEOUT="60",
    )
    torch.set_num_threads(1)
    if fail_at_step is not None and rank == 1:
        _fail_at(fail_at_step)
    for settings in runs:
        train(TrainConfig.from_dict(settings))


def _fail_at(step: int) -> None:
    """Make this rank's ``step``-th training step raise."""
    from molmtl.training import _loop

    original, calls = _loop.train_step, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            raise RuntimeError("injected failure")
        return original(*args, **kwargs)

    _loop.train_step = failing


def _start_ranks(runs: list[dict], fail_at_step: int | None = None) -> list:
    context = multiprocessing.get_context("spawn")
    port = _free_port()
    ranks = [
        context.Process(target=_rank_main, args=(rank, port, runs, fail_at_step))
        for rank in range(WORLD_SIZE)
    ]
    for process in ranks:
        process.start()
    return ranks


@pytest.fixture(scope="module")
def two_rank_runs(holey_csv, tmp_path_factory) -> Path:
    """One epoch of every method in METHODS, trained by two ranks (one spawn for all)."""
    root = tmp_path_factory.mktemp("ranks")
    runs = [_settings(holey_csv, root / method, balancer=method) for method in METHODS]
    ranks = _start_ranks(runs)
    for process in ranks:
        process.join(timeout=300)
        assert process.exitcode == 0
    return root


@pytest.mark.parametrize("method", METHODS)
def test_two_ranks_equal_one_process_on_the_global_batches(
    method, two_rank_runs, holey_csv, tmp_path
):
    torch.set_num_threads(1)
    alone = train(TrainConfig.from_dict(_settings(holey_csv, tmp_path / method, balancer=method)))
    expected = torch.load(alone / "checkpoint.pt", weights_only=True)
    found = torch.load(two_rank_runs / method / "checkpoint.pt", weights_only=True)
    # 7 steps of Adam: the parameters, and the balancers' state (UW's, DB-MTL's moving averages)
    torch.testing.assert_close(found["model"], expected["model"], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(found["balancer"], expected["balancer"], rtol=1e-4, atol=1e-6)
    assert found["rng"]["shuffle"].equal(expected["rng"]["shuffle"])


def _relative_difference(a: dict, b: dict) -> float:
    return max(abs(a["mae"][t] - b["mae"][t]) / abs(b["mae"][t]) for t in TARGETS)


def _write_toml(path: Path, settings: dict) -> Path:
    lines = []
    for key, value in settings.items():
        if key != "model":
            lines.append(f"{key} = {json.dumps(value)}")
    lines.append("[model]")
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings["model"].items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_torchrun_train_equals_one_rank_and_resumes_with_one(holey_csv, tmp_path):
    """``torchrun --nproc-per-node 2 -m molmtl train`` = one process; resumed by one process."""
    settings = _settings(holey_csv, tmp_path / "two", balancer="dbmtl", epochs=2)
    config_file = _write_toml(tmp_path / "run.toml", settings)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MOLMTL_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", "-m", "molmtl", "train", "--config", str(config_file)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run directory:") == 1  # rank 0 reports
    torch.set_num_threads(1)
    alone = train(TrainConfig.from_dict({**settings, "out": str(tmp_path / "one")}))
    two_ranks = json.loads((tmp_path / "two" / "test_metrics.json").read_text())
    one_rank = json.loads((alone / "test_metrics.json").read_text())
    assert two_ranks["n_molecules"] == one_rank["n_molecules"]
    assert _relative_difference(two_ranks, one_rank) <= 1e-4
    # the two-rank run continued by one rank equals one rank throughout
    resumed = train(TrainConfig.from_run(tmp_path / "two", {"epochs": 3}), resume=True)
    longer = train(TrainConfig.from_dict({**settings, "epochs": 3, "out": str(tmp_path / "three")}))
    assert (
        _relative_difference(
            json.loads((resumed / "test_metrics.json").read_text()),
            json.loads((longer / "test_metrics.json").read_text()),
        )
        <= 1e-4
    )


@pytest.mark.slow  # about 25 s on the shared 2-core machine
def test_a_failing_rank_brings_the_other_down(holey_csv, tmp_path):
    ranks = _start_ranks([_settings(holey_csv, tmp_path / "run")], fail_at_step=3)
    for process in ranks:
        process.join(timeout=120)
    alive = [process.is_alive() for process in ranks]
    for process in ranks:
        if process.is_alive():
            process.kill()
    assert alive == [False, False]
    assert [process.exitcode != 0 for process in ranks] == [True, True]
