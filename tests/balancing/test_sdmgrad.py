"""SDMGrad: optimality of its simplex problem against independent solutions (the generic
Gram-aggregator properties are in test_aggregators.py)."""

import numpy as np
import pytest
import torch
from test_aggregators import SHAPES, random_grads, weights_of

import molmtl.balancing as mb


def shifted_gradients(grads: np.ndarray, lamda: float) -> np.ndarray:
    """``[T, P]`` rows ``g_i + lamda g_0``, whose hull's min-norm point SDMGrad's ``w`` is."""
    return grads + lamda * grads.mean(axis=0)


def simplex_part(weights: np.ndarray, lamda: float) -> np.ndarray:
    """The simplex weights ``w`` behind SDMGrad's weights ``(w + lamda / T) / (1 + lamda)``."""
    return weights * (1 + lamda) - lamda / len(weights)


def spread_grads(n_tasks: int, n_params: int, seed: int, spread: float) -> np.ndarray:
    """Random gradients with a shared component and norms spanning ``spread``."""
    rng = np.random.default_rng(seed)
    grads = rng.standard_normal((n_tasks, n_params)) + 0.5 * rng.standard_normal(n_params)
    scales = np.logspace(0, np.log10(spread), n_tasks)[rng.permutation(n_tasks)]
    return grads * scales[:, None]


def projected_gradient_reference(grads: np.ndarray, lamda: float, steps: int = 20000):
    """``w`` by plain projected gradient descent on ``|g_w + lamda g_0|^2 / 2`` (as the authors'
    code, but with a safe step and to convergence)."""
    gram = grads @ grads.T
    towards_average = gram.mean(axis=1)
    step = 1.0 / np.linalg.eigvalsh(gram).max()
    w = np.full(len(gram), 1.0 / len(gram))
    for _ in range(steps):
        w = project_on_simplex(w - step * (gram @ w + lamda * towards_average))
    return w


def project_on_simplex(v: np.ndarray) -> np.ndarray:
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1
    rho = np.nonzero(u - cumulative / np.arange(1, len(v) + 1) > 0)[0][-1]
    return np.maximum(v - cumulative[rho] / (rho + 1), 0.0)


@pytest.mark.parametrize("lamda", [0.0, 0.3, 2.0])
@pytest.mark.parametrize(("n_tasks", "n_params", "seed"), SHAPES[:3])  # where PGD converges
def test_matches_projected_gradient_to_convergence(n_tasks, n_params, seed, lamda):
    grads = random_grads(n_tasks, n_params, seed).numpy()
    weights = weights_of(mb.SDMGrad(lamda=lamda), torch.from_numpy(grads)).numpy()
    expected = projected_gradient_reference(grads, lamda)
    np.testing.assert_allclose(simplex_part(weights, lamda), expected, atol=1e-6)
    np.testing.assert_allclose(weights.sum(), 1.0)


@pytest.mark.parametrize("second_scale", [1e-6, 1.0, 1e6])
@pytest.mark.parametrize("seed", range(4))
def test_two_tasks_match_the_closed_form(second_scale, seed):
    grads = spread_grads(2, 5, seed, 1.0) * np.array([[1.0], [second_scale]])
    first, second = shifted_gradients(grads, 0.3)
    # min over t in [0, 1] of |t v_1 + (1 - t) v_2|^2
    share = np.clip(second @ (second - first) / np.sum((first - second) ** 2), 0.0, 1.0)
    weights = weights_of(mb.SDMGrad(), torch.from_numpy(grads)).numpy()
    np.testing.assert_allclose(simplex_part(weights, 0.3), [share, 1 - share], atol=1e-9)


@pytest.mark.parametrize("spread", [1e3, 1e6])
@pytest.mark.parametrize("seed", range(20))
def test_reaches_the_optimum_on_badly_scaled_gradients(spread, seed):
    """The KKT conditions of min_w |sum_i w_i v_i|^2 over the simplex: every (G w)_i is at least
    w^T G w, with equality where w_i > 0 (relative to the largest |v_i|^2)."""
    n_tasks = 3 + seed % 9
    grads = spread_grads(n_tasks, 4 * n_tasks, seed, spread)
    simplex = simplex_part(weights_of(mb.SDMGrad(), torch.from_numpy(grads)).numpy(), 0.3)
    shifted = shifted_gradients(grads, 0.3)
    gram = shifted @ shifted.T
    slack = gram @ simplex - simplex @ gram @ simplex
    scale = gram.diagonal().max()
    assert (simplex >= -1e-12).all()
    np.testing.assert_allclose(simplex.sum(), 1.0)
    assert slack.min() >= -1e-10 * scale
    assert np.abs(slack * simplex).max() <= 1e-10 * scale


def test_zero_lamda_is_mgda():
    grads = random_grads(5, 12, 2)
    torch.testing.assert_close(
        weights_of(mb.SDMGrad(lamda=0.0), grads), weights_of(mb.MGDA(), grads)
    )


def test_large_lamda_approaches_the_average():
    grads = random_grads(4, 9, 1)
    torch.testing.assert_close(
        weights_of(mb.SDMGrad(lamda=1e6), grads), torch.full((4,), 0.25).double(), atol=1e-5, rtol=0
    )


def test_rejects_negative_lamda():
    with pytest.raises(ValueError, match="lamda must be >= 0"):
        mb.SDMGrad(lamda=-0.1)
