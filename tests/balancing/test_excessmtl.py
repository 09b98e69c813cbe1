"""ExcessMTL against a transcription of the authors' code, and its missing labels."""

import pytest
import torch
from tinymtl import TinyMTL, make_batch

import molmtl.balancing as mb


class ReferenceExcessMTL:
    """The authors' ``ExcessMTL.backward`` (yifei-he/ExcessMTL) on given gradients."""

    def __init__(self, n_tasks, step_size=1e-2):
        self.loss_weight = torch.ones(n_tasks, dtype=torch.float64)
        self.grad_sum = None
        self.initial_w = None
        self.step_size = step_size

    def update(self, grads):
        n_tasks = len(grads)
        if self.grad_sum is None:
            self.grad_sum = torch.zeros_like(grads)
        w = torch.zeros(n_tasks, dtype=torch.float64)
        for i in range(n_tasks):
            self.grad_sum[i] += grads[i] ** 2
            w[i] = grads[i] * (1 / torch.sqrt(self.grad_sum[i] + 1e-7)) @ grads[i]
        if self.initial_w is None:
            self.initial_w = w
        else:
            self.loss_weight = self.loss_weight * torch.exp(w / self.initial_w * self.step_size)
            self.loss_weight = self.loss_weight / self.loss_weight.sum() * n_tasks
        return self.loss_weight


def random_grads(generator, n_tasks=4, n_params=9):
    """Gradients whose norms span 1e5 over the tasks (the same spread every step)."""
    scales = torch.logspace(-3, 2, n_tasks, dtype=torch.float64)[:, None]
    return torch.randn(n_tasks, n_params, generator=generator, dtype=torch.float64) * scales


@pytest.mark.parametrize("step_size", [1e-2, 1.0])
def test_matches_the_authors_code_over_steps(step_size):
    generator = torch.Generator().manual_seed(0)
    aggregator = mb.ExcessMTL(step_size=step_size)
    reference = ReferenceExcessMTL(4, step_size)
    mask = torch.ones(4, dtype=torch.bool)
    for _ in range(6):
        grads = random_grads(generator)
        update, weights = aggregator(grads), aggregator.weights_
        expected = reference.update(grads)
        torch.testing.assert_close(weights, expected, rtol=1e-12, atol=0)
        torch.testing.assert_close(update, expected @ grads, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(
            aggregator.weights(grads, torch.ones(4), mask).sum(), torch.tensor(4.0).double()
        )
    assert not torch.allclose(weights, torch.ones(4).double())


def test_unlabelled_task_keeps_its_state():
    generator = torch.Generator().manual_seed(1)
    aggregator = mb.ExcessMTL(step_size=1.0)
    losses = torch.ones(4, dtype=torch.float64)
    aggregator.aggregate(random_grads(generator), losses, torch.ones(4, dtype=torch.bool))
    before = {key: value.clone() for key, value in aggregator.state_dict().items()}
    mask = torch.tensor([True, True, False, True])
    grads = torch.where(mask[:, None], random_grads(generator), torch.nan)  # nothing may leak
    update, weights = aggregator.aggregate(grads, losses, mask)
    state = aggregator.state_dict()
    assert torch.equal(state["squared_grads_"][2], before["squared_grads_"][2])
    assert torch.equal(state["weights_"][2], before["weights_"][2])
    assert weights[2] == 0 and torch.isfinite(update).all()
    torch.testing.assert_close(state["weights_"].sum(), torch.tensor(4.0).double())
    assert not torch.allclose(state["weights_"][mask], before["weights_"][mask])


def test_first_labelled_step_of_a_task_sets_its_reference():
    generator = torch.Generator().manual_seed(2)
    aggregator = mb.ExcessMTL(step_size=1.0)
    losses = torch.ones(3, dtype=torch.float64)
    late = torch.tensor([True, True, False])
    aggregator.aggregate(torch.where(late[:, None], random_grads(generator, 3), 0.0), losses, late)
    assert (
        torch.isnan(aggregator.initial_excess_[2])
        and not aggregator.initial_excess_[:2].isnan().any()
    )
    aggregator.aggregate(random_grads(generator, 3), losses, torch.ones(3, dtype=torch.bool))
    assert not aggregator.initial_excess_.isnan().any()
    # Task 2's first labelled step: only the others step up, then all are rescaled.
    weights = aggregator.weights_
    assert weights[2] < weights[:2].min()
    torch.testing.assert_close(weights.sum(), torch.tensor(3.0).double())


@pytest.mark.parametrize("weight_heads", [True, False])
def test_heads_get_their_tasks_weights_as_in_the_authors_code(weight_heads):
    model = TinyMTL().double()
    balancer = mb.get(
        "excessmtl", step_size=1.0, weight_heads=weight_heads, **model.balancer_kwargs()
    )
    heads = list(model.heads.parameters())
    for seed in range(3):
        x, y = make_batch(dtype=torch.float64, seed=seed)
        losses = model.losses(x, y)
        model.zero_grad(set_to_none=True)
        weights = balancer.backward(losses)["weights"]
        head_weights = weights if weight_heads else torch.ones_like(weights)
        expected = torch.autograd.grad((head_weights * model.losses(x, y)).sum(), heads)
        for param, grad in zip(heads, expected, strict=True):
            torch.testing.assert_close(param.grad, grad)
    assert not torch.allclose(weights, torch.ones_like(weights))


def test_large_steps_do_not_overflow():
    generator = torch.Generator().manual_seed(3)
    aggregator = mb.ExcessMTL(step_size=1e4)
    for _ in range(3):
        aggregator(random_grads(generator))
    assert torch.isfinite(aggregator.weights_).all()
    torch.testing.assert_close(aggregator.weights_.sum(), torch.tensor(4.0).double())


def test_rejects_negative_step_size():
    with pytest.raises(ValueError, match="step_size"):
        mb.ExcessMTL(step_size=-1.0)
