"""Nash-MTL's heads: each gets its task's alpha_t times its gradient, as in the official code."""

import pytest
import torch
from tinymtl import TinyMTL, make_batch

import molmtl.balancing as mb

MASKS = [None, [True, False, True]]


def head_grads(model):
    return [p.grad.clone() for p in model.heads.parameters()]


@pytest.mark.parametrize("backend", ["sequential", "batched"])
@pytest.mark.parametrize("mask", MASKS)
def test_heads_get_the_unclipped_alpha_times_their_gradient(backend, mask):
    """The official code and LibMTL back-propagate ``sum_t alpha_t L_t`` and then clip only the
    shared parameters' gradient, so head t gets ``alpha_t grad L_t``."""
    model = TinyMTL().double()
    balancer = mb.get("nashmtl", **model.balancer_kwargs(), backend=backend)
    keep = torch.ones(3, dtype=torch.bool) if mask is None else torch.tensor(mask)
    x, y = make_batch(dtype=torch.float64)
    diagnostics = balancer.backward(model.losses(x, y), None if mask is None else keep)
    alpha = balancer.aggregator.alpha_ * keep
    # |d| = sqrt(T) > max_norm = 1: the shared update is clipped, the heads are not.
    assert not torch.allclose(diagnostics["weights"], alpha)
    heads = list(model.heads.parameters())
    expected = torch.autograd.grad((alpha * model.losses(x, y)).sum(), heads)
    for got, want in zip(head_grads(model), expected, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("mask", MASKS)
def test_weight_heads_false_gives_the_plain_gradient(mask):
    model = TinyMTL().double()
    balancer = mb.get("nashmtl", **model.balancer_kwargs(), weight_heads=False)
    keep = torch.ones(3, dtype=torch.bool) if mask is None else torch.tensor(mask)
    x, y = make_batch(dtype=torch.float64)
    balancer.backward(model.losses(x, y), None if mask is None else keep)
    heads = list(model.heads.parameters())
    expected = torch.autograd.grad(model.losses(x, y)[keep].sum(), heads)
    for got, want in zip(head_grads(model), expected, strict=True):
        torch.testing.assert_close(got, want)


def test_reused_alpha_weights_the_heads_too():
    """Between solves (``update_weights_every``), the reused alpha also weights the heads."""
    model = TinyMTL().double()
    balancer = mb.get("nashmtl", **model.balancer_kwargs(), update_weights_every=2)
    first_x, first_y = make_batch(dtype=torch.float64, seed=0)
    balancer.backward(model.losses(first_x, first_y))
    alpha = balancer.aggregator.alpha_.clone()
    model.zero_grad(set_to_none=True)
    x, y = make_batch(dtype=torch.float64, seed=1)
    balancer.backward(model.losses(x, y))
    expected = torch.autograd.grad(
        (alpha * model.losses(x, y)).sum(), list(model.heads.parameters())
    )
    for got, want in zip(head_grads(model), expected, strict=True):
        torch.testing.assert_close(got, want)
