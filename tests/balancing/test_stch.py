"""STCH against the authors' objective (warm-up, nadir point, smooth Tchebycheff), in float64."""

import io

import pytest
import torch
from tinymtl import TinyMTL, assert_same_state, make_batch

import molmtl.balancing as mb

MASKS = [None, torch.tensor([True, False, True])]


def authors_objective(losses, nadir, mu):
    """The authors' STCH loss after the warm-up (Xi-L/STCH), on the labelled losses."""
    log_ratios = torch.log(losses / nadir + 1e-20)
    stable = log_ratios - log_ratios.detach().max()
    return mu * torch.log(torch.exp(stable / mu).sum()) * len(losses)


def grads_of(model, objective):
    return torch.autograd.grad(objective, list(model.parameters()), retain_graph=True)


def run(model, balancer, x, y, mask):
    model.zero_grad(set_to_none=True)
    balancer.backward(model.losses(x, y), mask)
    return [p.grad.clone() for p in model.parameters()]


def train_epoch(model, balancer, seeds, mask, objective=None):
    """One epoch on the batches ``seeds``, checking each step's gradients against those of
    ``objective(losses)`` if given; returns the losses seen ``[steps, T]``."""
    seen = []
    for seed in seeds:
        x, y = make_batch(dtype=torch.float64, seed=seed)
        losses = model.losses(x, y)
        seen.append(losses.detach())
        expected = None if objective is None else grads_of(model, objective(losses))
        got = run(model, balancer, x, y, mask)
        for got_grad, want in zip(got, expected or got, strict=True):
            torch.testing.assert_close(got_grad, want)
    balancer.end_epoch()
    return torch.stack(seen)


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("mu", [1.0, 0.3])
def test_warm_up_then_smooth_tchebycheff_of_the_nadir_normalised_log_losses(mu, mask):
    model = TinyMTL().double()
    balancer = mb.get("stch", mu=mu, warmup_epochs=2, **model.balancer_kwargs())
    keep = torch.ones(3, dtype=torch.bool) if mask is None else mask

    def warm_up(losses):
        return torch.log(losses[keep] + 1e-20).sum()

    for epoch in range(2):
        seen = train_epoch(model, balancer, [10 * epoch, 10 * epoch + 1], mask, warm_up)
        assert (balancer.nadir_ is None) == (epoch == 0)
    nadir = seen.mean(dim=0)  # the last warm-up epoch's batches
    torch.testing.assert_close(balancer.nadir_[keep], nadir[keep])

    def smooth_tchebycheff(losses):
        return authors_objective(losses[keep], nadir[keep], mu)

    train_epoch(model, balancer, [20, 21, 22], mask, smooth_tchebycheff)


def test_nadir_of_a_task_without_labels_in_the_last_warm_up_epoch_is_one():
    model = TinyMTL().double()
    balancer = mb.get("stch", warmup_epochs=1, **model.balancer_kwargs())
    train_epoch(model, balancer, [0, 1], torch.tensor([True, False, True]))
    assert balancer.nadir_[1] == 1.0 and (balancer.nadir_[[0, 2]] != 1.0).all()


def test_resumed_after_the_warm_up_equals_uninterrupted():
    def fresh():
        model = TinyMTL().double()
        return model, mb.get("stch", warmup_epochs=1, **model.balancer_kwargs())

    model, balancer = fresh()
    train_epoch(model, balancer, [0, 1], None)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "balancer": balancer.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    resumed_model, resumed = fresh()
    resumed_model.load_state_dict(checkpoint["model"])
    resumed.load_state_dict(checkpoint["balancer"])
    assert_same_state(resumed.state_dict(), balancer.state_dict())
    x, y = make_batch(dtype=torch.float64, seed=5)
    for got, want in zip(
        run(resumed_model, resumed, x, y, None), run(model, balancer, x, y, None), strict=True
    ):
        assert torch.equal(got, want)


@pytest.mark.parametrize(
    ("options", "match"), [({"mu": 0.0}, "mu"), ({"warmup_epochs": 0}, "warmup_epochs")]
)
def test_rejects_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        mb.get("stch", **options, **TinyMTL().balancer_kwargs())
