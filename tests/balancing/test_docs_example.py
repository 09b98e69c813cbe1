"""The worked example of docs/balancing.md (also in README.md) runs as written."""

import re
from pathlib import Path

import pytest
import torch

DOC = Path(__file__).resolve().parents[2] / "docs" / "balancing.md"


@pytest.fixture
def one_thread():
    # The example is tiny: more threads only add contention on a shared CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_docs_example_runs_and_learns(capsys, one_thread):
    text = DOC.read_text()
    marker = text.index("test_docs_example.py runs the next code block")
    code = re.search(r"```python\n(.*?)```", text[marker:], re.DOTALL).group(1)
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    losses, diagnostics, y = namespace["losses"], namespace["diagnostics"], namespace["y"]
    assert torch.isfinite(diagnostics["weights"]).all()
    # Every task, whatever its scale, explains most of its variance.
    assert (losses / y.var(dim=0) < 0.2).all()
    assert "weights" in capsys.readouterr().out
