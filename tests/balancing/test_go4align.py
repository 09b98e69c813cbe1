"""GO4Align: the exact 1-D K-means against brute force, and the weights against the authors' code."""

import itertools

import numpy as np
import pytest
import torch
from tinymtl import TinyMTL, make_batch

import molmtl.balancing as mb
from molmtl.balancing._methods.go4align import grouped_means


def brute_force_kmeans(values: np.ndarray, groups: int) -> tuple[float, np.ndarray]:
    """Least within-cluster sum of squares over every assignment to at most ``groups`` clusters
    (not only contiguous ones), and each value's cluster mean."""
    best_cost, best_means = np.inf, values
    for labels in itertools.product(range(groups), repeat=len(values)):
        labels = np.array(labels)
        means = np.zeros_like(values)
        for label in set(labels):
            means[labels == label] = values[labels == label].mean()
        cost = np.sum((values - means) ** 2)
        if cost < best_cost * (1 - 1e-12):
            best_cost, best_means = cost, means
    return best_cost, best_means


def random_values(seed: int, n_values: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.lognormal(sigma=2.0, size=n_values) * 10.0 ** rng.integers(-3, 3)


def all_present(n: int) -> torch.Tensor:
    return torch.ones(n, dtype=torch.bool)


@pytest.mark.parametrize("groups", [1, 2, 3, 5])
@pytest.mark.parametrize("n_values", [1, 2, 4, 6])
@pytest.mark.parametrize("seed", range(5))
def test_kmeans_reaches_the_global_optimum(groups, n_values, seed):
    values = random_values(seed, n_values)
    got = grouped_means(torch.from_numpy(values), all_present(n_values), groups).numpy()
    cost, expected = brute_force_kmeans(values, min(groups, n_values))
    np.testing.assert_allclose(np.sum((values - got) ** 2), cost, rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_kmeans_is_permutation_equivariant_and_ignores_absent_values(seed):
    values = torch.from_numpy(random_values(seed, 7))
    mask = torch.tensor([True, False, True, True, False, True, True])
    permutation = torch.randperm(7, generator=torch.Generator().manual_seed(seed))
    got = grouped_means(torch.where(mask, values, torch.nan), mask, 3)
    assert (got[~mask] == 0).all()
    torch.testing.assert_close(got[mask], grouped_means(values[mask], all_present(5), 3))
    torch.testing.assert_close(
        grouped_means(values[permutation], mask[permutation], 3), got[permutation]
    )


def test_kmeans_of_equal_values_keeps_them_together():
    values = torch.tensor([1.0, 5.0, 1.0, 5.0, 9.0], dtype=torch.float64)
    expected = torch.tensor([1.0, 19 / 3, 1.0, 19 / 3, 19 / 3], dtype=torch.float64)
    torch.testing.assert_close(grouped_means(values, all_present(5), 2), expected)


class AuthorsGO4Align:
    """The authors' ``GO4ALIGN.get_weighted_loss`` (autumn9999/GO4Align), all tasks labelled,
    with its K-means replaced by the brute-force optimum (theirs starts from random centres)."""

    def __init__(self, n_tasks, groups, beta):
        self.probabilities = torch.ones(n_tasks, dtype=torch.float64) / n_tasks
        self.groups, self.beta = groups, beta

    def weights(self, losses):
        scale = losses.sum() / losses
        self.probabilities = self.probabilities * torch.exp(-self.beta * losses)
        self.probabilities = self.probabilities / self.probabilities.sum()
        indicators = (scale * self.probabilities).numpy()
        if self.groups == 1:
            return torch.full_like(losses, indicators.mean())
        _, means = brute_force_kmeans(indicators, min(self.groups, len(losses)))
        return torch.from_numpy(means)


#: undo make_batch's target scales 10^t (losses 10^2t) for 5 tasks.
LOSS_SCALES = torch.logspace(0, -8, 5, dtype=torch.float64)


@pytest.mark.parametrize(("groups", "beta"), [(1, 1e-4), (2, 0.5), (3, 0.1), (5, 1e-4)])
def test_weights_match_the_authors_code_over_steps(groups, beta):
    model = TinyMTL(n_tasks=5).double()
    balancer = mb.get("go4align", groups=groups, beta=beta, **model.balancer_kwargs())
    reference = AuthorsGO4Align(5, groups, beta)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    for seed in range(4):
        x, y = make_batch(n_tasks=5, dtype=torch.float64, seed=seed)
        losses = model.losses(x, y) * LOSS_SCALES  # O(1): exp(-beta L) does not underflow
        expected = reference.weights(losses.detach())
        expected_grads = torch.autograd.grad(
            (expected * losses).sum(), list(model.parameters()), retain_graph=True
        )
        model.zero_grad(set_to_none=True)
        weights = balancer.backward(losses)["weights"]
        torch.testing.assert_close(weights, expected, rtol=1e-6, atol=0)
        for param, grad in zip(model.parameters(), expected_grads, strict=True):
            # (molmtl's 1e-8 next to the losses moves the weights by ~1e-8 relative)
            torch.testing.assert_close(param.grad, grad, rtol=1e-6, atol=1e-7 * grad.abs().max())
        optimizer.step()
    torch.testing.assert_close(balancer.smoothness_, reference.probabilities)
    assert len(set(weights.tolist())) == min(groups, 5)


def test_unlabelled_task_keeps_its_smoothness_and_changes_nothing_else():
    model = TinyMTL(n_tasks=4).double()
    mask = torch.tensor([True, True, False, True])
    balancer = mb.get("go4align", groups=2, beta=0.5, **model.balancer_kwargs())
    subset = AuthorsGO4Align(3, 2, 0.5)
    x, y = make_batch(n_tasks=4, dtype=torch.float64)
    losses = model.losses(x, y)
    weights = balancer.backward(losses, mask)["weights"]
    assert weights[2] == 0 and balancer.smoothness_[2] == 0.25
    torch.testing.assert_close(
        weights[mask], subset.weights(losses.detach()[mask]), rtol=1e-6, atol=0
    )
    torch.testing.assert_close(balancer.smoothness_.sum(), torch.tensor(1.0).double())


@pytest.mark.parametrize(
    ("options", "match"), [({"groups": 0}, "groups"), ({"beta": -1.0}, "beta")]
)
def test_rejects_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        mb.get("go4align", **options, **TinyMTL().balancer_kwargs())
