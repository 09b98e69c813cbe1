"""Loss-weighting methods against slow references written from their papers / authors' code.

In float64, so that comparisons are not at the mercy of float32 summation order.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from tinymtl import TinyMTL, make_batch

import molmtl.balancing as mb
from molmtl.balancing._loss_weighting import masked_softmax

MASKS = [None, torch.tensor([True, False, True])]


def grads_of(model, objective):
    return torch.autograd.grad(
        objective,
        list(model.parameters()),
        retain_graph=True,
        allow_unused=True,
        materialize_grads=True,
    )


def balancer_grads(model, balancer, x, y, mask=None):
    model.zero_grad(set_to_none=True)
    diagnostics = balancer.backward(model.losses(x, y), mask)
    return [p.grad.clone() for p in model.parameters()], diagnostics["weights"]


def assert_all_close(got, expected, **tolerances):
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, **tolerances)


def labelled(losses, mask):
    return losses if mask is None else losses[mask]


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize(
    ("name", "objective"),
    [
        ("ew", lambda losses: losses.sum()),
        ("si", lambda losses: torch.log(losses + 1e-8).sum()),
        ("gls", lambda losses: torch.pow(losses.prod(), 1.0 / len(losses))),
    ],
)
def test_stateless_methods_match_their_objective(name, objective, mask):
    model = TinyMTL().double()
    balancer = mb.get(name, **model.balancer_kwargs())
    for seed in range(3):
        x, y = make_batch(dtype=torch.float64, seed=seed)
        expected = grads_of(model, objective(labelled(model.losses(x, y), mask)))
        got, _ = balancer_grads(model, balancer, x, y, mask)
        assert_all_close(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mask", MASKS)
def test_uw_matches_learning_log_variances_with_the_model(mask):
    model = TinyMTL().double()
    balancer = mb.get("uw", lr=0.1, **model.balancer_kwargs())
    log_variances = torch.nn.Parameter(torch.full((3,), -0.5, dtype=torch.float64))
    optimizer = torch.optim.Adam([log_variances], lr=0.1)
    for seed in range(4):
        x, y = make_batch(dtype=torch.float64, seed=seed)
        losses = model.losses(x, y)
        keep = torch.ones(3, dtype=torch.bool) if mask is None else mask
        objective = (losses / (2 * log_variances.exp()) + log_variances / 2)[keep].sum()
        optimizer.zero_grad()
        expected = grads_of(model, objective)
        objective.backward(inputs=[log_variances])
        got, weights = balancer_grads(model, balancer, x, y, mask)
        assert_all_close(got, expected, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(weights[keep], (0.5 * (-log_variances[keep]).exp()).detach())
        optimizer.step()
        torch.testing.assert_close(balancer.log_variances_.detach(), log_variances.detach())


def test_dwa_weights_follow_epoch_loss_ratios():
    model = TinyMTL().double()
    balancer = mb.get("dwa", **model.balancer_kwargs())
    epoch_means = []
    for epoch in range(4):
        seen = []
        for batch in range(2):
            x, y = make_batch(dtype=torch.float64, seed=10 * epoch + batch)
            with torch.no_grad():
                seen.append(model.losses(x, y))
            _, weights = balancer_grads(model, balancer, x, y)
            if epoch < 2:
                expected = torch.ones(3, dtype=torch.float64)
            else:
                ratios = epoch_means[-1] / epoch_means[-2]
                expected = 3 * F.softmax(ratios / 2.0, dim=-1)
            torch.testing.assert_close(weights, expected)
        epoch_means.append(torch.stack(seen).mean(0))
        balancer.end_epoch()


def test_dwa_masked_epoch_means_and_weights():
    model = TinyMTL().double()
    balancer = mb.get("dwa", **model.balancer_kwargs())
    masks = [torch.tensor([True, False, True]), torch.tensor([True, True, False])]
    means = []
    for epoch in range(3):
        x, y = make_batch(dtype=torch.float64, seed=epoch)
        with torch.no_grad():
            losses = model.losses(x, y)
        _, weights = balancer_grads(model, balancer, x, y, masks[epoch % 2])
        if epoch == 2:
            # Task 1 lacked labels in epoch 0 and task 2 in epoch 1: their ratios fall back to 1.
            ratios = torch.tensor([means[1][0] / means[0][0], 1.0], dtype=torch.float64)
            expected = 2 * F.softmax(ratios / 2.0, dim=-1)
            torch.testing.assert_close(weights[masks[0]], expected)
            assert weights[1] == 0
        means.append(losses)
        balancer.end_epoch()


@pytest.mark.parametrize("mask", MASKS)
def test_rlw_weights_are_a_softmax_of_its_generator(mask):
    model = TinyMTL().double()
    balancer = mb.get("rlw", seed=123, **model.balancer_kwargs())
    generator = torch.Generator().manual_seed(123)
    keep = torch.ones(3, dtype=torch.bool) if mask is None else mask
    for seed in range(3):
        x, y = make_batch(dtype=torch.float64, seed=seed)
        expected_weights = masked_softmax(
            torch.randn(3, generator=generator, dtype=torch.float64), keep
        )
        expected = grads_of(model, (expected_weights * model.losses(x, y)).sum())
        got, weights = balancer_grads(model, balancer, x, y, mask)
        torch.testing.assert_close(weights, expected_weights)
        assert_all_close(got, expected, rtol=1e-5, atol=1e-7)
        assert weights.sum().item() == pytest.approx(1.0)


class AuthorsFAMO:
    """FAMO as in the authors' repository (Cranial-XIX/FAMO, famo.py), on the CPU."""

    def __init__(self, n_tasks, gamma=0.01, w_lr=0.025):
        self.min_losses = torch.zeros(n_tasks, dtype=torch.float64)
        self.w = torch.tensor([0.0] * n_tasks, dtype=torch.float64, requires_grad=True)
        self.w_opt = torch.optim.Adam([self.w], lr=w_lr, weight_decay=gamma)

    def get_weighted_loss(self, losses):
        self.prev_loss = losses
        z = F.softmax(self.w, -1)
        D = losses - self.min_losses + 1e-8
        c = (z / D).sum().detach()
        return (D.log() * z / c).sum()

    def update(self, curr_loss):
        delta = (self.prev_loss - self.min_losses + 1e-8).log() - (
            curr_loss - self.min_losses + 1e-8
        ).log()
        with torch.enable_grad():
            d = torch.autograd.grad(F.softmax(self.w, -1), self.w, grad_outputs=delta.detach())[0]
        self.w_opt.zero_grad()
        self.w.grad = d
        self.w_opt.step()


def test_famo_matches_authors_code_with_next_batch_losses():
    model = TinyMTL().double()
    balancer = mb.get("famo", **model.balancer_kwargs())
    reference = AuthorsFAMO(3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for step in range(5):
        x, y = make_batch(dtype=torch.float64, seed=step)
        losses = model.losses(x, y)
        if step > 0:
            reference.update(losses.detach())
        expected = grads_of(model, reference.get_weighted_loss(losses.detach() * 0 + losses))
        got, _ = balancer_grads(model, balancer, x, y)
        assert_all_close(got, expected, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(balancer.logits_.detach(), reference.w.detach())
        optimizer.step()


def test_famo_equals_the_authors_same_batch_update_in_full_batch_training():
    """The authors' loop measures the post-step losses with a second forward pass of the same
    batch; with one batch for every step that is the next step's losses, which molmtl uses."""
    model = TinyMTL().double()
    reference_model = copy.deepcopy(model)
    balancer = mb.get("famo", **model.balancer_kwargs())
    reference = AuthorsFAMO(3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    reference_optimizer = torch.optim.SGD(reference_model.parameters(), lr=0.05)
    x, y = make_batch(dtype=torch.float64)
    for _ in range(6):
        optimizer.zero_grad()
        balancer.backward(model.losses(x, y))
        optimizer.step()
        reference_optimizer.zero_grad()
        reference.get_weighted_loss(reference_model.losses(x, y)).backward()
        reference_optimizer.step()
        with torch.no_grad():
            reference.update(reference_model.losses(x, y))
        for param, expected in zip(model.parameters(), reference_model.parameters(), strict=True):
            torch.testing.assert_close(param, expected)


@pytest.mark.parametrize("name", mb.available())
def test_masked_task_has_no_influence(name):
    """Whatever a masked-out task's loss is, the update and the weights stay the same."""
    mask = torch.tensor([True, False, True])
    results = []
    for masked_scale in (1.0, 50.0):
        model = TinyMTL().double()
        balancer = mb.get(name, **model.balancer_kwargs())
        scales = torch.tensor([1.0, masked_scale, 1.0], dtype=torch.float64)
        for seed in range(2):
            model.zero_grad(set_to_none=True)
            x, y = make_batch(dtype=torch.float64, seed=seed)
            diagnostics = balancer.backward(model.losses(x, y) * scales, mask)
        results.append(([p.grad.clone() for p in model.parameters()], diagnostics["weights"]))
        assert all((p.grad == 0).all() for p in model.heads[1].parameters())
        assert diagnostics["weights"][1] == 0
    (grads_a, weights_a), (grads_b, weights_b) = results
    assert_all_close(grads_b, grads_a, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(weights_b, weights_a)


def test_loss_weighting_leaves_copies_independent():
    model = TinyMTL().double()
    balancer = mb.get("uw", **model.balancer_kwargs())
    clone = copy.deepcopy(balancer)
    x, y = make_batch(dtype=torch.float64)
    balancer.backward(model.losses(x, y))
    assert not torch.equal(balancer.log_variances_, clone.log_variances_)
