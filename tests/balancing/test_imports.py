import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_balancing_imports_nothing_chemical():
    code = (
        "import sys, molmtl.balancing as mb; mb.get('dbmtl', shared=[__import__('torch').nn.Parameter("
        "__import__('torch').zeros(2))], n_tasks=2); "
        "print(sorted(m for m in ('rdkit', 'torch_geometric') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
