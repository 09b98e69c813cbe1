from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from molmtl.cli import main as cli_main
from molmtl.cli.main import COMMANDS, main

REPO = Path(__file__).resolve().parents[2]


def test_help_is_fast_and_imports_nothing_heavy():
    # timed inside the child, so interpreter start-up on a busy machine does not count
    script = (
        "import sys, time, runpy\n"
        "started = time.perf_counter()\n"
        "sys.argv = ['molmtl', '--help']\n"
        "try:\n    runpy.run_module('molmtl.cli.main', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'rdkit', 'torch_geometric', 'pandas', 'matplotlib') if m in sys.modules)\n"
        "print('HEAVY', heavy, 'SECONDS', time.perf_counter() - started)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert "HEAVY []" in result.stdout
    assert all(name in result.stdout for name in COMMANDS)
    seconds = float(result.stdout.split("SECONDS")[1])
    assert seconds < 0.5, f"molmtl --help took {seconds:.2f} s"


@pytest.mark.parametrize("command", ["train", "evaluate", "plot"])
def test_subcommand_help_does_not_import_torch(command):
    script = (
        "import sys\nfrom molmtl.cli.main import main\n"
        f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH', 'torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert "TORCH False" in result.stdout
    assert "usage: molmtl " + command in result.stdout


def test_unknown_command_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tran"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'tran'" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def _command_that(action):
    """A stand-in subcommand module whose ``run`` does ``action``."""
    return types.SimpleNamespace(add_arguments=lambda parser: None, run=lambda args: action())


def _interrupt():
    raise KeyboardInterrupt


def _terminate():
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)  # the handler raises before this ends


def _close_the_pipe():
    raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize(
    ("action", "code", "message"),
    [
        (_interrupt, 130, "molmtl: interrupted\n"),
        (_terminate, 143, "molmtl: terminated\n"),
        (_close_the_pipe, 141, ""),
    ],
)
def test_interruptions_end_with_one_line_and_the_signal_status(
    monkeypatch, capfd, action, code: int, message: str
):
    monkeypatch.setattr(cli_main, "import_module", lambda name: _command_that(action))
    before = signal.getsignal(signal.SIGTERM)
    saved_stdout = os.dup(1)  # the pipe case points fd 1 at /dev/null
    try:
        assert main(["predict"]) == code
    finally:
        os.dup2(saved_stdout, 1)
        os.close(saved_stdout)
    assert capfd.readouterr().err == message
    assert signal.getsignal(signal.SIGTERM) is before  # restored for the caller


@pytest.mark.slow  # a fresh interpreter imports torch and RDKit: seconds on a busy machine
def test_a_closed_stdout_ends_predict_quietly(tmp_path: Path):
    script = (
        "import sys\nsys.path.insert(0, 'tests/predict')\nfrom pathlib import Path\n"
        "from conftest import write_run_dir\n"
        f"write_run_dir(Path({str(tmp_path / 'run')!r}), seed=0)\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=120)
    smiles = ["CCO"] * 2_000
    result = subprocess.run(
        f"{sys.executable} -m molmtl.cli.main predict -m {tmp_path / 'run'} --device cpu "
        f"--threads 1 {' '.join(smiles)} | head -1",
        shell=True,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.startswith("smiles")
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr
