from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
