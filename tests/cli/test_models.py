"""`molmtl models` and `molmtl predict` with the shipped model (no --model)."""

from __future__ import annotations

import json

import pandas as pd

from molmtl.cli.main import main
from molmtl.pretrained import DEFAULT_MODEL, get_model


def test_models_lists_the_shipped_models(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{DEFAULT_MODEL} (default): {get_model().summary}")
    assert "test Δm%" in out and "u0_atom" in out


def test_models_json_is_the_card(capsys):
    assert main(["models", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[DEFAULT_MODEL] == get_model().card()


def test_predict_without_model_uses_the_shipped_one_and_says_so(capsys):
    assert main(["predict", "CCO", "nonsense", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert f"model: {DEFAULT_MODEL}, shipped with molmtl" in captured.err
    assert "CCO" in captured.out and "homo [eV]" in captured.out


def test_predict_by_shipped_name_equals_the_default(tmp_path, capsys):
    named, default = tmp_path / "named.csv", tmp_path / "default.csv"
    assert main(["predict", "CCO", "c1ccccc1", "-m", DEFAULT_MODEL, "-o", str(named)]) == 0
    assert main(["predict", "CCO", "c1ccccc1", "-o", str(default)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(named), pd.read_csv(default))


def test_unknown_model_is_one_line(capsys):
    assert main(["predict", "CCO", "-m", "no-such-model-or-dir"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("molmtl predict: error:") and "no-such-model-or-dir" in err
    assert len(err.splitlines()) == 1
