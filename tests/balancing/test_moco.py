"""MoCo against a transcription of the authors' code as LibMTL ships it, and its missing labels."""

import pytest
import torch
import torch.nn.functional as F
from tinymtl import TinyMTL, make_batch

import molmtl.balancing as mb


class ReferenceMoCo:
    """LibMTL's ``MoCo.backward`` on given gradients and losses, all tasks labelled."""

    def __init__(
        self, n_tasks, n_params, beta=0.5, beta_sigma=0.5, gamma=0.1, gamma_sigma=0.5, rho=0.0
    ):
        self.y = torch.zeros(n_tasks, n_params, dtype=torch.float64)
        self.lambd = torch.ones(n_tasks, dtype=torch.float64) / n_tasks
        self.settings = (beta, beta_sigma, gamma, gamma_sigma, rho)
        self.step = 0

    def update(self, grads, losses):
        beta, beta_sigma, gamma, gamma_sigma, rho = self.settings
        self.step += 1
        grads = torch.stack(
            [g / (g.norm() + 1e-8) * loss for g, loss in zip(grads, losses, strict=True)]
        )
        self.y = self.y - (beta / self.step**beta_sigma) * (self.y - grads)
        ridge = rho * torch.eye(len(losses), dtype=torch.float64)
        step = (gamma / self.step**gamma_sigma) * (self.y @ self.y.t() + ridge) @ self.lambd
        self.lambd = F.softmax(self.lambd - step, -1)
        return self.y.t() @ self.lambd


def random_step(generator, n_tasks=4, n_params=9):
    scales = 10.0 ** torch.randint(-2, 3, (n_tasks, 1), generator=generator)
    grads = torch.randn(n_tasks, n_params, generator=generator, dtype=torch.float64) * scales
    losses = torch.rand(n_tasks, generator=generator, dtype=torch.float64) * 3 + 0.1
    return grads, losses


@pytest.mark.parametrize(
    "options",
    [{}, {"rho": 0.5}, {"beta": 0.9, "beta_sigma": 0.0, "gamma": 2.0, "gamma_sigma": 0.0}],
)
def test_matches_the_authors_code_over_steps(options):
    generator = torch.Generator().manual_seed(0)
    aggregator = mb.MoCo(**options)
    reference = ReferenceMoCo(4, 9, **options)
    mask = torch.ones(4, dtype=torch.bool)
    for _ in range(6):
        grads, losses = random_step(generator)
        update, weights = aggregator.aggregate(grads, losses, mask)
        torch.testing.assert_close(update, reference.update(grads, losses), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(weights, reference.lambd, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(weights, torch.full((4,), 0.25).double())


def test_unlabelled_task_keeps_its_state_and_the_others_step_among_themselves():
    generator = torch.Generator().manual_seed(1)
    aggregator = mb.MoCo(gamma=2.0)
    full = torch.ones(4, dtype=torch.bool)
    for _ in range(2):
        aggregator.aggregate(*random_step(generator), full)
    before = {key: value.clone() for key, value in aggregator.state_dict().items()}
    grads, losses = random_step(generator)
    mask = torch.tensor([True, False, True, True])
    grads[1] = 0.0
    update, weights = aggregator.aggregate(grads, losses, mask)
    state = aggregator.state_dict()
    assert torch.equal(state["tracking_"][1], before["tracking_"][1])
    assert torch.equal(state["weights_"][1], before["weights_"][1])
    torch.testing.assert_close(state["weights_"].sum(), torch.tensor(1.0).double())
    assert weights[1] == 0
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0).double())
    # The labelled tasks alone: the same step from lambda restricted to them and renormalised.
    subset = mb.MoCo(gamma=2.0)
    kept = mask.nonzero().squeeze(1)
    lambd = before["weights_"][kept]
    subset.load_state_dict(
        {
            "tracking_": before["tracking_"][kept],
            "weights_": lambd / lambd.sum(),
            "step_": before["step_"],
        }
    )
    sub_update, sub_weights = subset.aggregate(
        grads[kept], losses[kept], torch.ones(3, dtype=torch.bool)
    )
    torch.testing.assert_close(weights[kept], sub_weights)
    torch.testing.assert_close(update, sub_update)


def test_step_without_labels_changes_nothing():
    generator = torch.Generator().manual_seed(2)
    aggregator = mb.MoCo()
    aggregator.aggregate(*random_step(generator), torch.ones(4, dtype=torch.bool))
    before = aggregator.state_dict()
    grads, losses = random_step(generator)
    update, weights = aggregator.aggregate(grads * 0, losses, torch.zeros(4, dtype=torch.bool))
    assert (update == 0).all() and (weights == 0).all()
    for key, value in aggregator.state_dict().items():
        assert torch.equal(value, before[key])


def test_balancer_applies_the_tracked_update_and_leaves_heads_plain():
    model = TinyMTL().double()
    x, y = make_batch(dtype=torch.float64)
    heads = list(model.heads.parameters())
    expected_heads = torch.autograd.grad(model.losses(x, y).sum(), heads)
    balancer = mb.get("moco", **model.balancer_kwargs())
    balancer.backward(model.losses(x, y))
    for param, grad in zip(heads, expected_heads, strict=True):
        torch.testing.assert_close(param.grad, grad)
    torch.testing.assert_close(
        model.shared_grad(), balancer.aggregator.weights_ @ balancer.aggregator.tracking_
    )


@pytest.mark.parametrize(
    ("options", "match"),
    [({"beta": 0.0}, "beta"), ({"gamma": -1.0}, "gamma"), ({"rho": -1.0}, "rho")],
)
def test_rejects_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        mb.MoCo(**options)
