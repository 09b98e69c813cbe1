"""GradNorm against a transcription that forms the weighted gradients in full, as LibMTL does."""

import pytest
import torch
from tinymtl import TinyMTL, make_batch

import molmtl.balancing as mb


class ReferenceGradNorm:
    def __init__(self, n_tasks, alpha=1.5, lr=1e-3):
        self.logits = torch.zeros(n_tasks, dtype=torch.float64, requires_grad=True)
        self.optimizer = torch.optim.Adam([self.logits], lr=lr)
        self.alpha = alpha
        self.initial = None

    def weights(self, grads, losses):
        n_tasks = len(losses)
        if self.initial is None:
            self.initial = losses.clone()
        loss_scale = n_tasks * torch.softmax(self.logits, dim=-1)
        per_task = torch.norm(loss_scale.unsqueeze(1) * grads, p=2, dim=-1)
        rates = (losses + 1e-8) / (self.initial + 1e-8)
        relative = rates / rates.mean()
        constant = (per_task.mean(0) * relative**self.alpha).detach()
        objective = (per_task - constant).abs().sum(0)
        self.optimizer.zero_grad()
        objective.backward()
        self.optimizer.step()
        return loss_scale.detach()


@pytest.mark.parametrize(("n_tasks", "alpha", "seed"), [(2, 1.5, 0), (3, 1.5, 1), (4, 0.5, 2)])
def test_weights_match_reference(n_tasks, alpha, seed):
    generator = torch.Generator().manual_seed(seed)
    aggregator = mb.GradNorm(alpha=alpha, lr=0.05)
    reference = ReferenceGradNorm(n_tasks, alpha=alpha, lr=0.05)
    for _ in range(5):
        grads = torch.randn(n_tasks, 6, generator=generator, dtype=torch.float64)
        grads *= torch.rand(n_tasks, 1, generator=generator, dtype=torch.float64) * 10
        losses = torch.rand(n_tasks, generator=generator, dtype=torch.float64) + 0.1
        mask = torch.ones(n_tasks, dtype=torch.bool)
        expected = reference.weights(grads, losses)
        update, weights = aggregator.aggregate(grads, losses, mask)
        torch.testing.assert_close(weights, expected)
        torch.testing.assert_close(update, expected @ grads)
    assert not torch.allclose(weights, torch.ones(n_tasks, dtype=torch.float64))
    torch.testing.assert_close(weights.sum(), torch.tensor(float(n_tasks), dtype=torch.float64))


def test_balancer_weights_shared_gradients_and_leaves_heads_plain():
    model = TinyMTL()
    x, y = make_batch()
    heads = list(model.heads.parameters())
    expected_heads = torch.autograd.grad(model.losses(x, y).sum(), heads)
    balancer = mb.get("gradnorm", **model.balancer_kwargs())
    balancer.backward(model.losses(x, y))
    for param, grad in zip(heads, expected_heads, strict=True):
        torch.testing.assert_close(param.grad, grad)
