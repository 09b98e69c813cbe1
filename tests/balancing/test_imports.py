import subprocess
import sys
from pathlib import Path

import pytest

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


def test_method_names_need_no_torch():
    """A config validator lists the names without paying for torch."""
    code = (
        "import sys, molmtl.balancing as mb; names = mb.available(); "
        "assert 'dbmtl' in names, names; assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_public_names_resolve():
    import molmtl.balancing as mb

    for name in mb.__all__:
        assert getattr(mb, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'DbMtl'"):
        mb.DbMtl  # noqa: B018
