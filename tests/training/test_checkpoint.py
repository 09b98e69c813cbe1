"""A damaged or foreign checkpoint.pt is refused with a RunDirError naming it, never a traceback."""

from __future__ import annotations

import pytest
import torch

from molmtl.rundir import RunDirError
from molmtl.training import prepare_run, restore_checkpoint, start


@pytest.fixture
def run(make_tiny):
    """A started run (its epoch-0 checkpoint written), prepared again for resuming."""
    start(prepare_run(make_tiny()))
    return prepare_run(make_tiny(), resume=True)


def _edit(path, change):
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(b"not a checkpoint"), "is not a molmtl checkpoint"),
        (lambda p: p.write_bytes(p.read_bytes()[:500]), "is not a molmtl checkpoint"),
        (lambda p: torch.save([1, 2], p), "checkpoint version None"),
        (lambda p: _edit(p, lambda s: s.update(version=7)), "checkpoint version 7"),
        (lambda p: _edit(p, lambda s: s.pop("optimizer")), "lacks \\['optimizer'\\]"),
        (lambda p: _edit(p, lambda s: s["run"].pop("epoch")), "does not fit this run"),
        (lambda p: _edit(p, lambda s: s["run"].update(epoch=-3)), "inconsistent"),
        (lambda p: _edit(p, lambda s: s["run"].update(history="x")), "inconsistent"),
        (lambda p: _edit(p, lambda s: s.update(model={})), "does not fit this run"),
        (
            lambda p: _edit(p, lambda s: s["model"].update(target_mean=torch.zeros(7))),
            "does not fit this run",
        ),
        (lambda p: _edit(p, lambda s: s["rng"].update(cpu=torch.zeros(2))), "does not fit"),
        (lambda p: p.unlink(), "does not exist"),
    ],
)
def test_a_damaged_checkpoint_is_refused(run, damage, message):
    damage(run.run_dir.checkpoint_path)
    with pytest.raises(RunDirError, match=message):
        restore_checkpoint(run)
