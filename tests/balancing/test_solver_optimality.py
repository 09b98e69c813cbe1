"""The solver-based methods reach their own problem's optimum on badly scaled gradients.

Gradients are drawn with norms spread over 1, 10^3 and 10^6 (largest / smallest), as QM9's
targets produce. Every check is independent of molmtl's solvers: an optimality certificate
computed from the raw gradients (a duality gap, KKT conditions or the method's defining
condition), a brute-force search, a second solver (scipy's trust-constr on the primal problem,
scaled differently), or a closed form evaluated in 40-digit arithmetic (mpmath).
"""

from __future__ import annotations

import itertools

import mpmath
import numpy as np
import pytest
import torch
from scipy.optimize import LinearConstraint, NonlinearConstraint, minimize

from molmtl.balancing import IMTL, MGDA, Aggregator, AlignedMTL, CAGrad, NashMTL

#: largest / smallest gradient norm of the draws.
SPREADS = [1.0, 1e3, 1e6]
N_TASKS = [2, 3, 5, 11]
#: independent random directions (as in issue 11's example), or sharing a common component
#: (some tasks agree, some conflict).
SHARED = [0.0, 1.0]
SEEDS = range(4)
CASES = list(itertools.product(N_TASKS, SPREADS, SHARED))


def scaled_grads(n_tasks: int, spread: float, seed: int, shared: float = 0.0, n_params=None):
    """``[T, P]`` float64 gradients with norms ``spread^(-1/2) ... spread^(1/2)`` in random order."""
    rng = np.random.default_rng(seed)
    n_params = n_params or max(6, 2 * n_tasks)
    directions = rng.standard_normal((n_tasks, n_params)) + shared * rng.standard_normal(n_params)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    norms = spread ** np.linspace(-0.5, 0.5, n_tasks)
    return directions * rng.permutation(norms)[:, None]


def weights_of(aggregator: Aggregator, grads: np.ndarray, dtype=torch.float64) -> np.ndarray:
    tensor = torch.as_tensor(grads).to(dtype)
    n_tasks = tensor.shape[0]
    weights = aggregator.weights(
        tensor, torch.ones(n_tasks, dtype=dtype), torch.ones(n_tasks, dtype=torch.bool)
    )
    return weights.double().numpy()


# ---------------------------------------------------------------- CAGrad


def worst_improvement(grads: np.ndarray, direction: np.ndarray) -> float:
    return float((grads @ direction).min())


def cagrad_dual_value(grads: np.ndarray, dual: np.ndarray, c: float) -> float:
    """``g_w . g_0 + c |g_0| |g_w|``: an upper bound on the best worst-case improvement for any
    ``dual`` in the simplex (weak duality)."""
    average = grads.mean(axis=0)
    combined = dual @ grads
    return float(combined @ average + c * np.linalg.norm(average) * np.linalg.norm(combined))


def cagrad_scale(grads: np.ndarray) -> float:
    """The size of the worst-case improvement: smallest norm times ``|g_0|``."""
    return float(np.linalg.norm(grads, axis=1).min() * np.linalg.norm(grads.mean(axis=0)))


def cagrad_gap(grads: np.ndarray, weights: np.ndarray, c: float) -> float:
    """Relative duality gap of CAGrad's (``rescale=0``) answer, with the dual weights read off
    ``weights = 1/T + multiplier * dual``; asserts the answer lies in the ball."""
    n_tasks = grads.shape[0]
    average = grads.mean(axis=0)
    direction = weights @ grads
    assert np.linalg.norm(direction - average) <= c * np.linalg.norm(average) * (1 + 1e-9)
    dual = weights - 1.0 / n_tasks
    assert dual.min() >= -1e-12 * np.abs(dual).max()
    dual = np.clip(dual, 0.0, None) / dual.sum()
    upper = cagrad_dual_value(grads, dual, c)
    return (upper - worst_improvement(grads, direction)) / cagrad_scale(grads)


@pytest.mark.parametrize(("n_tasks", "spread", "shared"), CASES)
@pytest.mark.parametrize("c", [0.2, 0.5])
def test_cagrad_duality_gap_vanishes(n_tasks, spread, shared, c):
    for seed in SEEDS:
        grads = scaled_grads(n_tasks, spread, seed, shared)
        assert cagrad_gap(grads, weights_of(CAGrad(c=c, rescale=0), grads), c) <= 1e-8


@pytest.mark.parametrize("spread", SPREADS)
def test_cagrad_issue_11_draws(spread):
    """Issue 11's setting: T = 3, P = 6, random directions, c = 0.5; 80 draws."""
    for seed in range(80):
        grads = scaled_grads(3, spread, 1000 + seed, n_params=6)
        assert cagrad_gap(grads, weights_of(CAGrad(rescale=0), grads), 0.5) <= 1e-8, seed


def best_sampled_improvement(grads: np.ndarray, c: float, n_samples: int) -> float:
    """Brute force: the best worst-case improvement over directions ``g_0 + c |g_0| v`` with
    ``v`` sampled on the unit sphere of the gradients' span (where the optimum lies)."""
    basis, _ = np.linalg.qr(grads.T)  # [P, T], orthonormal
    rng = np.random.default_rng(0)
    if grads.shape[0] == 2:
        angles = np.linspace(0.0, 2 * np.pi, n_samples, endpoint=False)
        samples = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    else:
        samples = rng.standard_normal((n_samples, grads.shape[0]))
        samples /= np.linalg.norm(samples, axis=1, keepdims=True)
    average = grads.mean(axis=0)
    directions = average + c * np.linalg.norm(average) * samples @ basis.T
    return float((directions @ grads.T).min(axis=1).max())


@pytest.mark.parametrize(("n_tasks", "spread", "shared"), [k for k in CASES if k[0] <= 3])
def test_cagrad_is_at_least_as_good_as_brute_force(n_tasks, spread, shared):
    for seed in SEEDS:
        grads = scaled_grads(n_tasks, spread, seed, shared)
        found = worst_improvement(grads, weights_of(CAGrad(rescale=0), grads) @ grads)
        sampled = best_sampled_improvement(grads, 0.5, 200_000)
        scale = cagrad_scale(grads)
        assert found >= sampled - 1e-12 * scale
        assert found <= sampled + 2e-2 * scale  # the samples come close to it


def trust_constr_improvement(grads: np.ndarray, c: float) -> float:
    """The primal problem solved by scipy's trust-constr in ``(x, s)``, ``d = g_0 + c |g_0| x``,
    with each task's constraint divided by its gradient norm."""
    average = grads.mean(axis=0)
    norms = np.linalg.norm(grads, axis=1)
    radius = c * np.linalg.norm(average)
    n_params = grads.shape[1]
    # g_i . d >= s |g_0| min|g|, divided by |g_i| |g_0|.
    unit = np.ones((len(norms), 1))
    rows = np.hstack([radius * grads, -norms.min() * np.linalg.norm(average) * unit])
    rows /= (norms * np.linalg.norm(average))[:, None]
    lower = -(grads @ average) / (norms * np.linalg.norm(average))
    ball = NonlinearConstraint(
        lambda x: x[:-1] @ x[:-1],
        -np.inf,
        1.0,
        jac=lambda x: np.append(2 * x[:-1], 0.0),
        hess=lambda x, v: 2 * v[0] * np.diag(np.append(np.ones(n_params), 0.0)),
    )
    start = np.append(np.zeros(n_params), (grads @ average).min() / cagrad_scale(grads) - 1.0)
    result = minimize(
        lambda x: -x[-1],
        start,
        jac=lambda x: np.append(np.zeros(n_params), -1.0),
        hess=lambda x: np.zeros((n_params + 1, n_params + 1)),
        method="trust-constr",
        constraints=[LinearConstraint(rows, lower, np.inf), ball],
        options={"gtol": 1e-12, "xtol": 1e-14, "maxiter": 3000},
    )
    step = result.x[:-1] / max(1.0, np.linalg.norm(result.x[:-1]))
    return worst_improvement(grads, average + radius * step)


@pytest.mark.parametrize(("n_tasks", "spread"), [(3, 1e3), (3, 1e6), (5, 1e6), (11, 1e6)])
def test_cagrad_is_at_least_as_good_as_a_second_solver(n_tasks, spread):
    for seed in range(2):
        grads = scaled_grads(n_tasks, spread, seed)
        found = worst_improvement(grads, weights_of(CAGrad(rescale=0), grads) @ grads)
        reference = trust_constr_improvement(grads, 0.5)
        assert found >= reference - 1e-9 * cagrad_scale(grads)


# ---------------------------------------------------------------- MGDA


def min_norm_gap(grads: np.ndarray, weights: np.ndarray) -> float:
    """KKT of the min-norm point ``x`` of the convex hull: ``g_i . x >= |x|^2`` for every task
    (then ``|x|`` is within this gap of the optimum); the gap relative to the rounding level
    ``max |g_i| |x|`` of the products."""
    assert weights.min() >= 0.0
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-12)
    point = weights @ grads
    gap = point @ point - (grads @ point).min()
    return gap / (np.linalg.norm(grads, axis=1).max() * np.linalg.norm(point))


@pytest.mark.parametrize(("n_tasks", "spread", "shared"), CASES)
def test_mgda_satisfies_the_min_norm_kkt_conditions(n_tasks, spread, shared):
    for seed in SEEDS:
        grads = scaled_grads(n_tasks, spread, seed, shared)
        assert min_norm_gap(grads, weights_of(MGDA(), grads)) <= 1e-12


def exact_min_norm_point(grads: np.ndarray) -> np.ndarray:
    """The min-norm point by enumerating the supports, each solved in 40-digit arithmetic: on
    the optimal support, ``w`` is the affine minimiser and non-negative."""
    mpmath.mp.dps = 40
    gram = mpmath.matrix(grads.tolist()) * mpmath.matrix(grads.tolist()).T
    n_tasks = grads.shape[0]
    best, best_value = None, mpmath.inf
    for size in range(1, n_tasks + 1):
        for support in itertools.combinations(range(n_tasks), size):
            system = mpmath.zeros(size + 1, size + 1)
            for row, i in enumerate(support):
                for column, j in enumerate(support):
                    system[row, column] = gram[i, j]
                system[row, size] = system[size, row] = 1
            right = mpmath.matrix([0] * size + [1])
            solution = mpmath.lu_solve(system, right)
            weights = [solution[k] for k in range(size)]
            if min(weights) < 0:
                continue
            value = sum(
                weights[a] * weights[b] * gram[i, j]
                for a, i in enumerate(support)
                for b, j in enumerate(support)
            )
            if value < best_value:
                best_value = value
                best = np.zeros(n_tasks)
                best[list(support)] = [float(w) for w in weights]
    return best @ grads


# ---------------------------------------------------------------- Nash-MTL


@pytest.mark.parametrize(("n_tasks", "spread", "shared"), CASES)
def test_nashmtl_satisfies_the_bargaining_condition(n_tasks, spread, shared):
    for seed in SEEDS:
        grads = scaled_grads(n_tasks, spread, seed, shared)
        alpha = weights_of(NashMTL(max_norm=0.0), grads)
        assert (alpha > 0).all()
        np.testing.assert_allclose(alpha * (grads @ (alpha @ grads)), 1.0, rtol=1e-8)


@pytest.mark.parametrize(("spread", "shared"), list(itertools.product(SPREADS, SHARED)))
def test_nashmtl_matches_the_two_task_closed_form(spread, shared):
    """For T = 2, ``beta_i = alpha_i |g_i|`` solves ``beta_i (beta_i + rho beta_j) = 1``, so
    ``beta_1 = beta_2 = 1 / sqrt(1 + rho)`` with ``rho`` the cosine."""
    for seed in SEEDS:
        grads = scaled_grads(2, spread, seed, shared)
        norms = np.linalg.norm(grads, axis=1)
        cosine = grads[0] @ grads[1] / (norms[0] * norms[1])
        expected = 1.0 / (norms * np.sqrt(1.0 + cosine))
        np.testing.assert_allclose(weights_of(NashMTL(max_norm=0.0), grads), expected, rtol=1e-9)


# ---------------------------------------------------------------- IMTL


def exact_imtl_weights(grads: np.ndarray) -> np.ndarray:
    """IMTL-G's ``a = N^-1 C^-1 1``, normalised to sum 1, in 40-digit arithmetic."""
    mpmath.mp.dps = 40
    rows = [mpmath.matrix(row.tolist()) for row in grads]
    norms = [mpmath.norm(row) for row in rows]
    n_tasks = len(rows)
    cosines = mpmath.matrix(n_tasks, n_tasks)
    for i, j in itertools.product(range(n_tasks), repeat=2):
        cosines[i, j] = (rows[i].T * rows[j])[0] / (norms[i] * norms[j])
    unit_coefficients = mpmath.lu_solve(cosines, mpmath.matrix([1] * n_tasks))
    raw = [unit_coefficients[i] / norms[i] for i in range(n_tasks)]
    return np.array([float(r / sum(raw)) for r in raw])


@pytest.mark.parametrize(("n_tasks", "spread", "shared"), CASES)
def test_imtl_equalises_the_projections_on_unit_gradients(n_tasks, spread, shared):
    for seed in SEEDS:
        grads = scaled_grads(n_tasks, spread, seed, shared)
        weights = weights_of(IMTL(), grads)
        np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-12)
        update = weights @ grads
        projections = (grads / np.linalg.norm(grads, axis=1, keepdims=True)) @ update
        tolerance = 1e-8 * np.linalg.norm(update)
        np.testing.assert_allclose(projections, projections.mean(), rtol=0, atol=tolerance)


# ---------------------------------------------------------------- Aligned-MTL, and exact references


def exact_aligned_update(grads: np.ndarray) -> np.ndarray:
    """``sqrt(lambda_min) 1^T G^-1/2 grads`` from a 40-digit eigendecomposition of ``G``."""
    mpmath.mp.dps = 40
    exact = mpmath.matrix(grads.tolist())
    eigenvalues, eigenvectors = mpmath.eigsy(exact * exact.T)
    n_tasks = grads.shape[0]
    smallest = min(eigenvalues)
    weights = [mpmath.mpf(0)] * n_tasks
    for k in range(n_tasks):
        along = sum(eigenvectors[i, k] for i in range(n_tasks))
        for i in range(n_tasks):
            weights[i] += mpmath.sqrt(smallest / eigenvalues[k]) * eigenvectors[i, k] * along
    return np.array([float(w) for w in weights]) @ grads


#: method -> (its aggregator, the exact update in 40-digit arithmetic, relative tolerance, the
#: largest T it is run for: MGDA's reference enumerates all 2^T - 1 supports).
EXACT = {
    "mgda": (MGDA, exact_min_norm_point, 1e-7, 5),
    "imtl": (IMTL, lambda grads: exact_imtl_weights(grads) @ grads, 1e-8, 11),
    "alignedmtl": (AlignedMTL, exact_aligned_update, 1e-10, 11),
}


@pytest.mark.parametrize(
    ("name", "n_tasks", "spread", "shared"),
    [(name, *case) for name, exact in EXACT.items() for case in CASES if case[0] <= exact[3]],
)
def test_update_matches_the_exact_reference(name, n_tasks, spread, shared):
    make, reference, tolerance, _ = EXACT[name]
    for seed in SEEDS:
        grads = scaled_grads(n_tasks, spread, seed, shared)
        expected = reference(grads)
        got = weights_of(make(), grads) @ grads
        assert np.linalg.norm(got - expected) <= tolerance * np.linalg.norm(expected)


def test_alignedmtl_keeps_short_independent_gradients_in_float32():
    """A 10^4 spread of norms is no linear dependence: in float32 too every direction is kept
    (the official code's cut on the Gram eigenvalues would drop the shortest gradient's)."""
    grads = scaled_grads(3, 1e4, 0, n_params=6).astype(np.float32).astype(np.float64)
    expected = exact_aligned_update(grads)
    got = weights_of(AlignedMTL(), grads, dtype=torch.float32) @ grads
    assert np.linalg.norm(got - expected) <= 1e-4 * np.linalg.norm(expected)


# ---------------------------------------------------------------- all of them in float32

METHODS = {"cagrad": CAGrad, "mgda": MGDA, "nashmtl": lambda: NashMTL(max_norm=0.0), "imtl": IMTL}
METHODS["alignedmtl"] = AlignedMTL


@pytest.mark.parametrize("name", list(METHODS))
@pytest.mark.parametrize(("n_tasks", "spread"), list(itertools.product(N_TASKS, [1.0, 1e3])))
def test_float32_gradients_give_the_float64_answer(name, n_tasks, spread):
    """The float32 Gram matrix is accurate relative to each pair's norms, and so are the
    answers (the same gradients, rounded to float32, in both)."""
    for seed in SEEDS:
        grads = scaled_grads(n_tasks, spread, seed, 1.0).astype(np.float32).astype(np.float64)
        expected = weights_of(METHODS[name](), grads) @ grads
        got = weights_of(METHODS[name](), grads, dtype=torch.float32) @ grads
        assert np.linalg.norm(got - expected) <= 1e-3 * np.linalg.norm(expected)
