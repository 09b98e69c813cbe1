"""`molmtl predict`: agreement with the Python API, summary line, exit codes."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

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
        ("binary input", "has no column 'smiles'"),
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
        # bytes that are not UTF-8 read as lone surrogates (one bad cell is one invalid row),
        # so a binary file is a CSV without a SMILES column
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


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("", "the output path is empty"),
        (".", "it is a directory"),
        ("{tmp}", "it is a directory"),
        ("{tmp}/no-dir/out.csv", "does not exist"),
        ("{tmp}/out.csv.zip", "not .zip"),
    ],
)
def test_impossible_outputs_fail_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str, message: str
) -> None:
    # the model does not exist either: the output must be refused first
    output = output.format(tmp=tmp_path)
    for inputs in (["CCO"], ["-i", str(tmp_path / "absent.csv")]):
        assert molmtl_predict("-m", tmp_path / "no-run", *inputs, "-o", output) == 1
        err = capsys.readouterr().err
        assert err.startswith("molmtl predict: error: ") and message in err
        assert len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_dev_null_and_a_fifo_are_written_into_a_link_is_kept(
    run_dirs: list[Path], input_csv: Path, tmp_path: Path
) -> None:
    assert molmtl_predict("-m", run_dirs[0], "--device", "cpu", "-o", "/dev/null", "CCO") == 0
    assert Path("/dev/null").is_char_device()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    assert molmtl_predict("-m", run_dirs[0], "--device", "cpu", "-i", input_csv, "-o", fifo) == 0
    reader.join(timeout=30)
    assert fifo.is_fifo() and received[0].startswith(b"id,smiles,pred_valid")
    target, link = tmp_path / "target.csv", tmp_path / "link.csv"
    target.write_text("old\n")
    link.symlink_to(target)
    assert molmtl_predict("-m", run_dirs[0], "--device", "cpu", "-o", link, "CCO") == 0
    assert link.is_symlink() and target.read_text().startswith("smiles,valid")


def test_smiles_arguments_to_a_file_are_written_atomically(
    run_dirs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out.csv"
    out.write_text("old\n")

    def fail_halfway(frame: pd.DataFrame, stream, **options) -> None:
        stream.write("smiles,valid\nCCO,")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", fail_halfway)
    assert molmtl_predict("-m", run_dirs[0], "--device", "cpu", "-o", out, "CCO") == 1
    assert out.read_text() == "old\n" and sorted(tmp_path.iterdir()) == [out]


def test_undecodable_bytes_in_arguments_and_on_stdin_are_invalid_rows(
    run_dirs: list[Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def captured_stdout() -> io.TextIOWrapper:
        stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="")
        monkeypatch.setattr(sys, "stdout", stdout)
        return stdout

    stdout = captured_stdout()
    undecodable = os.fsdecode(b"C\xffC")  # how Python passes such an argument: a lone surrogate
    assert molmtl_predict("-m", run_dirs[0], "--device", "cpu", undecodable, "\ud800", "CCO") == 0
    stdout.flush()
    table = stdout.buffer.getvalue()
    assert b"C\xffC" in table and b"character '\\udcff'" in table  # the bytes as given
    assert "3 rows: 1 predicted, 2 invalid" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"id,smiles\n1,C\xffC\n2,CCO\n")))
    stdout = captured_stdout()
    assert molmtl_predict("-m", run_dirs[0], "--device", "cpu", "-i", "-") == 0
    stdout.flush()
    lines = stdout.buffer.getvalue().splitlines()
    assert lines[1].startswith(b"1,C\xffC,False,") and b",True," in lines[2]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--n-jobs", "99999"], "n_jobs must be an integer from 1 to 1024"),
        (["--n-jobs", "0"], "n_jobs must be an integer"),
        (["--batch-size", "100000000000"], "batch_size must be an integer from 1 to 100,000"),
        (["--chunk-size", "999999999"], "chunk_size must be an integer from 1 to 1,000,000"),
        (["--device", "meta"], "not supported for prediction"),
        (["--device", "toaster"], "unknown device 'toaster'"),
    ],
)
def test_absurd_resources_are_refused_in_one_line(
    run_dirs: list[Path], capsys: pytest.CaptureFixture[str], option: list[str], message: str
) -> None:
    assert molmtl_predict("-m", run_dirs[0], *option, "CCO") == 1
    err = capsys.readouterr().err
    assert err == f"molmtl predict: error: {err.split('error: ', 1)[1]}" and message in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "option",
    [
        ["--n-jobs", "x"],
        ["--batch-size", "0"],
        ["--batch-size", "1e3"],
        ["--chunk-size", "-4"],
        ["--threads", "0"],
        ["--threads", "99999"],
    ],
)
def test_malformed_numbers_are_usage_errors(
    run_dirs: list[Path], capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        molmtl_predict("-m", run_dirs[0], *option, "CCO")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option[0]}" in err and "Traceback" not in err


ARGUMENT = st.one_of(
    st.sampled_from(
        [
            "CCO",
            "-o",
            "-i",
            "--n-jobs",
            "--batch-size",
            "--chunk-size",
            "--device",
            "--threads",
            "--smiles-column",
            "--prefix",
            "-",
            "",
            ".",
            "0",
            "-1",
            "99999",
            "cpu",
            "nan",
            "/dev/null",
            "--",
            "-m",
        ]
    ),
    st.text(st.characters(codec=None), max_size=8),
)


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(arguments=st.lists(ARGUMENT, max_size=6))
def test_any_arguments_give_an_exit_code_never_a_traceback(
    run_dirs: list[Path], tmp_path_factory: pytest.TempPathFactory, arguments: list[str]
) -> None:
    folder = tmp_path_factory.mktemp("cli")
    argv = ["-m", str(run_dirs[0]), "--device", "cpu", "--threads", "1", *arguments]
    error = io.StringIO()
    with contextlib.redirect_stderr(error), contextlib.redirect_stdout(io.StringIO()):
        cwd = os.getcwd()
        os.chdir(folder)  # a stray output name lands here, never in the repository
        try:
            code = molmtl_predict(*argv)
        except SystemExit as usage:
            code = usage.code
        finally:
            os.chdir(cwd)
    assert code in (0, 1, 2)
    assert "Traceback" not in error.getvalue()
    assert not [path for path in folder.iterdir() if path.name.endswith(".tmp")]


@pytest.mark.parametrize(("closed", "argv"), [("stdin", ["-i", "-"]), ("stdout", ["CCO"])])
def test_a_closed_standard_stream_is_an_error_not_silence(
    run_dirs: list[Path], capsys: pytest.CaptureFixture[str], monkeypatch, closed: str, argv: list
) -> None:
    monkeypatch.setattr(sys, closed, None)  # how Python starts with `<&-` or `>&-`
    assert molmtl_predict("-m", run_dirs[0], "--device", "cpu", *argv) == 1
    assert f"{closed} is closed" in capsys.readouterr().err


def test_a_carriage_return_in_a_smiles_keeps_its_row(run_dirs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    smiles = ["CCO", "C\rC", "c1ccccc1"]
    assert molmtl_predict("-m", run_dirs[0], "--device", "cpu", "-o", out, *smiles) == 0
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert written["smiles"].tolist() == smiles
    assert written["valid"].tolist() == ["True", "False", "True"]


@pytest.mark.slow  # a fresh interpreter imports torch and RDKit: seconds on a busy machine
@pytest.mark.parametrize(("sent", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_run_leaves_no_temporary(
    run_dirs: list[Path], tmp_path: Path, sent: int, status: int
) -> None:
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text("smiles\n" + "CC(=O)Oc1ccccc1C(=O)O\n" * 50_000)
    command = [sys.executable, "-m", "molmtl.cli.main", "predict", "-m", str(run_dirs[0])]
    options = ["--device", "cpu", "--threads", "1", "--chunk-size", "1000"]
    child = subprocess.Popen(
        [*command, *options, "-i", str(source), "-o", str(out)],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the signal goes to its process group, as a terminal's would
        # a shell starts background jobs with SIGINT ignored, which the child would inherit
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.csv.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(child.pid, sent)
    assert child.wait(timeout=60) == status
    stderr = child.stderr.read()
    assert stderr.strip().splitlines()[-1] in ("molmtl: interrupted", "molmtl: terminated")
    assert "Traceback" not in stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv"]
