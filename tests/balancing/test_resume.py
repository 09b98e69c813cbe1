"""A run resumed from a checkpoint equals the uninterrupted run, bit for bit on the CPU."""

import io

import pytest
import torch
from tinymtl import TinyMTL, make_batch

import molmtl.balancing as mb

STEPS_BEFORE, STEPS_AFTER = 3, 3


def mask_of(step):
    # Missing labels now and then, and one batch with none at all.
    return [
        None,
        torch.tensor([True, False, True]),
        None,
        torch.tensor([False, False, False]),
        None,
        None,
    ][step]


def train(model, optimizer, balancer, steps):
    for step in steps:
        x, y = make_batch(seed=step)
        optimizer.zero_grad()
        balancer.backward(model.losses(x, y), mask_of(step))
        optimizer.step()
        if step % 2 == 1:
            balancer.end_epoch()


def fresh(name, seed):
    model = TinyMTL(seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    return model, optimizer, mb.get(name, **model.balancer_kwargs())


@pytest.mark.parametrize("name", mb.available())
def test_resumed_run_equals_uninterrupted(name):
    total = range(STEPS_BEFORE + STEPS_AFTER)
    torch.manual_seed(1)
    model, optimizer, balancer = fresh(name, seed=0)
    train(model, optimizer, balancer, total)

    torch.manual_seed(1)
    first, first_optimizer, first_balancer = fresh(name, seed=0)
    train(first, first_optimizer, first_balancer, total[:STEPS_BEFORE])
    buffer = io.BytesIO()
    torch.save(
        {
            "model": first.state_dict(),
            "optimizer": first_optimizer.state_dict(),
            "balancer": first_balancer.state_dict(),
        },
        buffer,
    )
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)

    torch.manual_seed(2)  # a different process would start from other random state
    resumed, resumed_optimizer, resumed_balancer = fresh(name, seed=5)
    resumed.load_state_dict(checkpoint["model"])
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    resumed_balancer.load_state_dict(checkpoint["balancer"])
    train(resumed, resumed_optimizer, resumed_balancer, total[STEPS_BEFORE:])

    for expected, got in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(expected, got)


#: methods whose state changes the outcome of the six steps above.
STATEFUL = ["dbmtl", "uw", "dwa", "famo", "gradnorm", "rlw", "graddrop"]
STATEFUL += ["go4align", "excessmtl", "moco"]


@pytest.mark.parametrize("name", STATEFUL)
def test_checkpoint_without_balancer_state_diverges(name):
    """The state matters: dropping it changes the run (so the test above is not vacuous)."""
    total = range(STEPS_BEFORE + STEPS_AFTER)
    model, optimizer, balancer = fresh(name, seed=0)
    train(model, optimizer, balancer, total)
    first, first_optimizer, first_balancer = fresh(name, seed=0)
    train(first, first_optimizer, first_balancer, total[:STEPS_BEFORE])
    forgetful = mb.get(name, **first.balancer_kwargs())
    train(first, first_optimizer, forgetful, total[STEPS_BEFORE:])
    assert any(
        not torch.equal(a, b) for a, b in zip(model.parameters(), first.parameters(), strict=True)
    )


@pytest.mark.parametrize("name", ["dbmtl", "uw", "dwa", "rlw"])
def test_load_state_dict_rejects_foreign_keys(name):
    balancer = mb.get(name, **TinyMTL().balancer_kwargs())
    with pytest.raises(ValueError, match="keys"):
        balancer.load_state_dict({"bogus": torch.zeros(1)})
