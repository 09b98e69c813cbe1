from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from molmtl.cli.main import main

QM9_CSV = Path(__file__).resolve().parents[1] / "fixtures" / "qm9" / "qm9.csv.xz"


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "tiny.csv"
    pd.read_csv(QM9_CSV, nrows=120)[["smiles", "mu", "gap"]].to_csv(path, index=False)
    return path


@pytest.fixture
def config_file(tmp_path, tiny_csv) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(
        f'dataset = "csv"\ndata = "{tiny_csv}"\ntargets = ["mu", "gap"]\nsplit = "random"\n'
        'epochs = 1\nbatch_size = 32\ndevice = "cpu"\nprogress = false\n'
        '[model]\nencoder = "gine"\nhidden_dim = 8\nn_layers = 1\nout_dim = 8\n'
    )
    return path


def test_train_then_evaluate_then_plot(tmp_path, config_file, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                str(config_file),
                "--balancer",
                "ew",
                "--epochs",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "test MAE" in printed and "gap" in printed
    config = json.loads((out / "config.json").read_text())
    assert (
        config["train"]["balancer"] == "ew" and config["train"]["epochs"] == 2
    )  # flags beat the file

    assert main(["evaluate", str(out), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    stored = json.loads((out / "test_metrics.json").read_text())
    assert evaluated["mae"] == pytest.approx(stored["mae"], rel=1e-5)

    assert main(["plot", str(out)]) == 0
    assert (out / "plots" / "loss.png").is_file()

    # resume with more epochs takes its settings from the run directory
    assert main(["train", "--resume", "--out", str(out), "--epochs", "3"]) == 0
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 3


def test_bad_setting_fails_with_a_message_not_a_traceback(tmp_path, config_file, capsys):
    code = main(
        ["train", "--config", str(config_file), "--epochs", "0", "--out", str(tmp_path / "x")]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "epochs must be an integer >= 1" in err and "Traceback" not in err


def test_evaluate_of_a_missing_run_fails_cleanly(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nothing")]) == 1
    assert "molmtl train" in capsys.readouterr().err
