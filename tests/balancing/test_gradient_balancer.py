"""Every gradient method through GradientBalancer equals its aggregator on reference gradients."""

import copy

import pytest
import torch
from tinymtl import TinyMTL, is_gradient_method, make_batch

import molmtl.balancing as mb

GRADIENT_NAMES = [name for name in mb.available() if is_gradient_method(name)]
MASKS = [None, torch.tensor([True, False, True])]


def reference_grads(model, losses, log_transform):
    """Per-task shared gradients one parameter at a time, and the (log-transformed) losses."""
    task_losses = torch.log(losses + 1e-8) if log_transform else losses
    shared = list(model.trunk.parameters())
    rows = [
        torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, shared, retain_graph=True)])
        for loss in task_losses
    ]
    return torch.stack(rows), task_losses


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("name", GRADIENT_NAMES)
def test_balancer_applies_its_aggregator(name, mask):
    model = TinyMTL().double()
    balancer = mb.get(name, **model.balancer_kwargs())
    log_transform = balancer.log_transform
    keep = torch.ones(3, dtype=torch.bool) if mask is None else mask
    for seed in range(2):
        x, y = make_batch(seed=seed, dtype=torch.float64)
        aggregator = copy.deepcopy(balancer.aggregator)
        losses = model.losses(x, y)
        grads, task_losses = reference_grads(model, losses, log_transform)
        grads = torch.where(keep[:, None], grads, 0.0)
        expected = aggregator(grads, torch.where(keep, losses.detach(), 1.0), keep)
        heads = list(model.heads.parameters())
        # The heads get the plain gradient, or each task's scaled by its head weight.
        head_weights = aggregator.head_weights() if aggregator.weight_heads else torch.ones(3)
        head_loss = (head_weights.to(task_losses.dtype) * task_losses)[keep].sum()
        expected_heads = torch.autograd.grad(head_loss, heads, retain_graph=True)
        model.zero_grad(set_to_none=True)
        diagnostics = balancer.backward(losses, mask)
        torch.testing.assert_close(model.shared_grad(), expected)
        for param, grad in zip(heads, expected_heads, strict=True):
            torch.testing.assert_close(param.grad, grad)
        torch.testing.assert_close(diagnostics["grad_norms"], grads.norm(dim=1))
