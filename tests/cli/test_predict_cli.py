"""`molmtl predict`: agreement with the Python API, summary line, exit codes."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from molmtl import featurizers
from molmtl.cli import predict as predict_cli
from molmtl.models import build_model, save_model
from molmtl.predict import Predictor

REPO = Path(__file__).resolve().parents[2]
SMILES = ["CCO", "not-a-smiles", "c1ccccc1", "", "[Na+].[Cl-]", "OC1COC1"]
TARGETS = [{"name": "homo", "unit": "eV"}, {"name": "alpha", "unit": "a0^3"}]


def write_tiny_mpnn_run(run_dir: Path, seed: int) -> Path:
    """A run directory with an untrained, tiny benchmark-MPNN (the CLI must not care)."""
    spec = featurizers.get("2d").spec
    torch.manual_seed(seed)
    model = build_model(
        {
            "encoder": "mpnn",
            "hidden_dim": 8,
            "edge_hidden_dim": 8,
            "n_iterations": 2,
            "set2set_steps": 2,
        },
        node_dim=spec["node_dim"],
        edge_dim=spec["edge_dim"],
        n_tasks=len(TARGETS),
    )
    model.set_target_scaling(torch.tensor([-6.5, 75.0]), torch.tensor([0.6, 8.0]))
    save_model(run_dir, model, {"featurizer": spec, "targets": TARGETS})
    return run_dir


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Restores torch's thread count, which `--threads` and this module set (one thread: tiny
    models run fastest so, and two threads on busy shared cores spin)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return [write_tiny_mpnn_run(tmp_path_factory.mktemp("run"), seed) for seed in (0, 1)]


@pytest.fixture
def input_csv(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    pd.DataFrame({"id": [f"m{i:03d}" for i in range(len(SMILES))], "smiles": SMILES}).to_csv(
        path, index=False
    )
    return path


def molmtl_predict(*argv: str | Path) -> int:
    """Run `molmtl predict ARGV` in this process, through the real `molmtl` entry point if present."""
    argv = [str(arg) for arg in argv]
    try:
        from molmtl.cli.main import main
    except ImportError:  # the top-level dispatcher is not there yet: use the subcommand alone
        parser = argparse.ArgumentParser(prog="molmtl predict")
        predict_cli.add_arguments(parser)
        return predict_cli.run(parser.parse_args(argv))
    return main(["predict", *argv])


def test_smiles_arguments_print_a_table_and_exit_0_despite_invalid_rows(
    run_dirs: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--model", run_dirs[0], "--device", "cpu", "--threads", "1", *[s for s in SMILES if s]]
    assert molmtl_predict(*argv) == 0
    out, err = capsys.readouterr()
    header, *rows = out.splitlines()
    assert header.split() == [
        "smiles",
        "valid",
        "error",
        "in_domain",
        "domain_note",
        "homo",
        "[eV]",
        "alpha",
        "[a0^3]",
    ]
    assert len(rows) == len(SMILES) - 1
    assert "unparseable" in rows[1]
    assert err.strip() == (
        "molmtl predict: 5 rows: 4 predicted, 1 invalid (NaN properties), "
        "1 valid but outside the model's domain (extrapolated; domain_note says why)"
    )


def test_cli_predict_file_and_api_agree(
    run_dirs: list[Path], input_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "cli.csv"
    assert (
        molmtl_predict("-m", run_dirs[0], "--device", "cpu", "--input", input_csv, "--output", out)
        == 0
    )
    predictor = Predictor.load(run_dirs[0], device="cpu")
    api_file = tmp_path / "api.csv"
    predictor.predict_file(input_csv, api_file)
    assert out.read_text() == api_file.read_text()
    written = pd.read_csv(out, keep_default_na=False)
    expected = predictor.predict(SMILES)
    assert written["pred_valid"].tolist() == expected["valid"].tolist()
    for target in predictor.targets:
        np.testing.assert_allclose(
            pd.to_numeric(written["pred_" + target]), expected[target], rtol=1e-5, atol=1e-5
        )


def test_smiles_arguments_to_csv_match_the_api(run_dirs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    smiles = [s for s in SMILES if s]
    assert molmtl_predict("-m", run_dirs[0], "--device", "cpu", "-o", out, *smiles) == 0
    written = pd.read_csv(out)
    expected = Predictor.load(run_dirs[0], device="cpu").predict(smiles)
    assert list(written.columns) == list(expected.columns)
    np.testing.assert_allclose(written[["homo", "alpha"]], expected[["homo", "alpha"]], rtol=1e-6)
    assert written["valid"].tolist() == expected["valid"].tolist()


def test_stdin_to_stdout(
    run_dirs: list[Path],
    input_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(input_csv.read_text()))
    assert molmtl_predict("-m", run_dirs[0], "--device", "cpu", "--input", "-") == 0
    out, _ = capsys.readouterr()
    expected = tmp_path / "file.csv"
    Predictor.load(run_dirs[0], device="cpu").predict_file(input_csv, expected)
    assert out == expected.read_text()


def test_ensemble_of_models(run_dirs: list[Path], input_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    argv = ["-m", run_dirs[0], "-m", run_dirs[1], "--device", "cpu", "-i", input_csv, "-o", out]
    assert molmtl_predict(*argv) == 0
    written = pd.read_csv(out)
    expected = Predictor.load(run_dirs, device="cpu").predict(SMILES)
    np.testing.assert_allclose(written["pred_homo_std"], expected["homo_std"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing model", "does not exist"),
        ("truncated model", "modified or truncated"),
        ("missing input", "No such file"),
        ("binary input", "can't decode"),
        ("empty input", "empty"),
        ("missing column", "no column 'smiles'; its columns are ['id', 'SMILES']"),
        ("column clash", "['pred_valid']"),
    ],
)
def test_failed_runs_exit_1_with_a_message(
    run_dirs: list[Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    message: str,
) -> None:
    model, source = run_dirs[0], tmp_path / "in.csv"
    source.write_text("smiles\nCCO\n")
    if case == "missing model":
        model = tmp_path / "no-such-run"
    elif case == "truncated model":
        model = write_tiny_mpnn_run(tmp_path / "run", seed=0)
        (model / "model.pt").write_bytes((model / "model.pt").read_bytes()[:64])
    elif case == "missing input":
        source = tmp_path / "absent.csv"
    elif case == "binary input":
        source.write_bytes(bytes(range(128, 256)) * 4)
    elif case == "empty input":
        source.write_text("")
    elif case == "missing column":
        source.write_text("id,SMILES\n1,CCO\n")
    elif case == "column clash":
        source.write_text("smiles,pred_valid\nCCO,yes\n")
    out = tmp_path / "out.csv"
    assert molmtl_predict("-m", model, "--device", "cpu", "-i", source, "-o", out) == 1
    _, err = capsys.readouterr()
    assert err.startswith("molmtl predict: error: ")
    assert message in err
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("extra", [[], ["CCO", "--input", "x.csv"]])
def test_smiles_xor_input_is_a_usage_error(
    run_dirs: list[Path], capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    assert molmtl_predict("-m", run_dirs[0], *extra) == 2
    assert "SMILES arguments or --input" in capsys.readouterr().err


@pytest.mark.slow  # a fresh interpreter imports torch and RDKit: seconds on a busy machine
def test_entry_point_fails_without_traceback(tmp_path: Path) -> None:
    pytest.importorskip("molmtl.cli.main")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "molmtl.cli.main",
            "predict",
            "--model",
            str(tmp_path / "none"),
            "CCO",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
