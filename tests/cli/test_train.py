from __future__ import annotations

import json
import re
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


def _frame(tiny_csv) -> pd.DataFrame:
    return pd.read_csv(tiny_csv)


def _write(tmp_path, name, content) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, pd.DataFrame):
        content.to_csv(path, index=False)
    else:
        path.write_text(content)
    return str(path)


#: ordinary mistakes: (name, setup(tmp_path, tiny_csv) -> extra argv, what the message names)
MISTAKES = {
    "missing-target-column": (
        lambda t, c: ["--data", str(c), "--targets", "mu", "lumo"],
        r"target column\(s\) \['lumo'\] not in the table",
    ),
    "text-target-column": (
        lambda t, c: ["--data", _write(t, "x.csv", _frame(c).assign(mu="high"))],
        "'mu' has non-numeric value 'high' in data row 0",
    ),
    "infinite-label": (
        lambda t, c: ["--data", _write(t, "x.csv", _frame(c).assign(gap=float("inf")))],
        "'gap' has infinite values",
    ),
    "empty-csv": (lambda t, c: ["--data", _write(t, "x.csv", b"")], "is empty"),
    "not-utf8": (
        lambda t, c: ["--data", _write(t, "x.csv", b"smiles,mu,gap\n\xe9,1,2\n")],
        "is not UTF-8",
    ),
    "no-molecule": (
        lambda t, c: ["--data", _write(t, "x.csv", _frame(c).assign(smiles="?"))],
        "has no valid molecule",
    ),
    "no-labels": (
        lambda t, c: ["--data", _write(t, "x.csv", _frame(c).assign(gap=None))],
        "target 'gap' has no label",
    ),
    "unknown-encoder": (lambda t, c: ["--encoder", "transformer"], "model.encoder"),
    "unknown-balancer": (lambda t, c: ["--balancer", "magic"], "balancer must be one of"),
    "unknown-model-option": (
        lambda t, c: ["--config", _write(t, "c.yaml", "model: {encoder: gine, depth: 3}\n")],
        "unknown option",
    ),
    "balancer-option": (
        lambda t, c: ["--config", _write(t, "c.toml", "[balancer_options]\nbeta = 'x'\n")],
        "balancer_options",
    ),
    "yaml-alias-bomb": (
        lambda t, c: ["--config", _write(t, "c.yaml", 'a: &a ["x","x"]\n' + _bomb_lines())],
        "expands to more than",
    ),
    "out-is-a-file": (lambda t, c: ["--out", _write(t, "taken", "mine")], "is a file"),
    "resume-nothing": (lambda t, c: ["--resume"], "cannot resume"),
    "missing-data": (lambda t, c: ["--data", str(t / "nowhere.csv")], "nowhere.csv"),
    "huge-seed": (lambda t, c: ["--seed", str(2**70)], "seed must be an integer from 0"),
    "device": (lambda t, c: ["--device", "meta"], "device"),
}


def _bomb_lines() -> str:
    lines = [f"b{i}: &b{i} [{','.join(['*a' if i == 0 else f'*b{i - 1}'] * 9)}]" for i in range(8)]
    return "\n".join(lines) + "\ntargets: *b7\n"


@pytest.mark.parametrize("mistake", MISTAKES)
def test_ordinary_mistakes_get_one_line_and_exit_1(
    tmp_path, config_file, tiny_csv, capsys, mistake
):
    setup, message = MISTAKES[mistake]
    argv = ["train", "--config", str(config_file), "--out", str(tmp_path / "run")]
    code = main([*argv, *setup(tmp_path, tiny_csv)])
    err = capsys.readouterr().err
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("molmtl train: error: "), err
    assert re.search(message, lines[0]), lines[0]


def test_warnings_are_lines_and_invalid_rows_are_listed(tmp_path, config_file, tiny_csv, capsys):
    frame = _frame(tiny_csv)
    frame.loc[[0, 5], "smiles"] = "not a molecule"
    data = _write(tmp_path, "some_bad.csv", frame)
    out = tmp_path / "run"
    argv = ["train", "--config", str(config_file), "--data", data, "--out", str(out)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "molmtl train: warning: 2 of 120 data rows have invalid SMILES" in err
    assert "Traceback" not in err and "UserWarning" not in err
    listed = pd.read_csv(out / "invalid_rows.csv")
    assert listed["row"].tolist() == [0, 5] and set(listed["smiles"]) == {"not a molecule"}


def test_evaluate_of_a_tampered_run_is_one_line(tmp_path, config_file, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", str(config_file), "--out", str(out)]) == 0
    splits = (out / "splits.json").read_text()
    (out / "splits.json").write_text('{"train": [0], "val": [1], "test": [1000]}')
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "outside the 120 molecules" in err[0]
    (out / "splits.json").write_text(splits)
    (out / "checkpoint.pt").write_bytes(b"garbage")
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a molmtl checkpoint" in err[0]
