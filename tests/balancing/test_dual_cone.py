"""UPGrad and DualProj: projections onto the dual cone, checked by their optimality conditions
and against a second solver of the primal problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from test_aggregators import SHAPES, random_grads, weights_of
from test_fairgrad import spread_grads

from molmtl.balancing import DualProj, UPGrad
from molmtl.balancing._methods._dual_cone import dual_cone_weights

#: relative tolerance of the optimality conditions.
TOLERANCE = 1e-9


def assert_is_projection(grads: np.ndarray, target: np.ndarray, weights: np.ndarray) -> None:
    """``weights @ grads`` is the projection of ``target @ grads`` onto the dual cone.

    The projection ``x`` of ``y`` onto ``{x : g_j . x >= 0}`` is characterised by
    ``x = y + sum_j z_j g_j`` with ``z >= 0``, ``g_j . x >= 0`` and ``z_j (g_j . x) = 0``; each is
    checked relative to the norms involved, so tiny gradients are held to the same standard.
    """
    projection = weights @ grads
    scale = max(np.linalg.norm(projection), np.linalg.norm(target @ grads))
    norms = np.linalg.norm(grads, axis=1)
    lifts = (weights - target) * norms / scale  # z_j |g_j|, relative
    cosines = grads @ projection / (norms * scale)  # g_j . x / (|g_j| scale)
    assert (lifts >= -TOLERANCE).all(), lifts
    assert (cosines >= -TOLERANCE).all(), cosines
    assert (np.abs(lifts * cosines) <= TOLERANCE).all(), lifts * cosines


def primal_projection(grads: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``argmin |x - vector|`` subject to ``g_j . x >= 0``, by SLSQP in the parameter space (the
    constraints on unit gradients: the same cone, better scaled)."""
    units = grads / np.linalg.norm(grads, axis=1, keepdims=True)
    scale = np.linalg.norm(vector)
    result = minimize(
        lambda x: np.sum((x - vector / scale) ** 2),
        vector / scale,
        jac=lambda x: 2 * (x - vector / scale),
        constraints=[{"type": "ineq", "fun": lambda x: units @ x, "jac": lambda x: units}],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    assert result.success, result.message
    return result.x * scale


@pytest.mark.parametrize(("n_tasks", "n_params", "seed"), SHAPES)
def test_projections_agree_with_a_primal_solver(n_tasks, n_params, seed):
    grads = random_grads(n_tasks, n_params, seed).numpy()
    targets = np.vstack([np.eye(n_tasks), np.ones(n_tasks)]) / n_tasks
    projections = dual_cone_weights(grads @ grads.T, targets) @ grads
    for target, projection in zip(targets, projections, strict=True):
        expected = primal_projection(grads, target @ grads)
        np.testing.assert_allclose(projection, expected, atol=1e-7 * np.linalg.norm(expected))


@pytest.mark.parametrize("decades", [0, 3, 6])
@pytest.mark.parametrize("seed", range(5))
def test_projections_are_optimal_for_norms_spanning_a_million(decades, seed):
    grads = spread_grads(11, seed, decades).numpy()
    targets = np.vstack([np.eye(11), np.ones(11)]) / 11
    for target, weights in zip(targets, dual_cone_weights(grads @ grads.T, targets), strict=True):
        assert_is_projection(grads, target, weights)


@pytest.mark.parametrize("seed", range(3))
def test_projections_with_more_tasks_than_dimensions_are_optimal(seed):
    grads = random_grads(8, 3, seed).numpy()
    targets = np.eye(8) / 8
    for target, weights in zip(targets, dual_cone_weights(grads @ grads.T, targets), strict=True):
        assert_is_projection(grads, target, weights)


@pytest.mark.parametrize("seed", range(5))
def test_upgrad_is_the_sum_of_the_projected_task_gradients(seed):
    grads = spread_grads(7, seed, decades=6)
    update = (weights_of(UPGrad(), grads) @ grads).numpy()
    gradients = grads.numpy()
    expected = dual_cone_weights(gradients @ gradients.T, np.eye(7) / 7).sum(axis=0) @ gradients
    np.testing.assert_allclose(update, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
    # Every task improves to first order.
    assert (
        gradients @ update
        >= -TOLERANCE * np.linalg.norm(gradients, axis=1) * np.linalg.norm(update)
    ).all()


@pytest.mark.parametrize("seed", range(5))
def test_dualproj_projects_the_mean_gradient(seed):
    grads = spread_grads(7, seed, decades=6)
    weights = weights_of(DualProj(), grads).numpy()
    assert_is_projection(grads.numpy(), np.full(7, 1 / 7), weights)


@pytest.mark.parametrize("aggregator", [UPGrad, DualProj])
def test_without_conflicts_the_update_is_the_mean(aggregator):
    grads = random_grads(4, 9, 0).abs()  # all pairwise products positive
    torch.testing.assert_close(weights_of(aggregator(), grads), torch.full((4,), 0.25).double())


@pytest.mark.parametrize("reg_eps", [1e-4, 1e-2])
def test_reg_eps_solves_torchjds_regularised_problem(reg_eps):
    grads = spread_grads(6, 1, decades=3).numpy()
    gram = grads @ grads.T
    regularised = gram / np.trace(gram) + reg_eps * np.eye(6)
    targets = np.eye(6) / 6
    np.testing.assert_allclose(
        dual_cone_weights(gram, targets, reg_eps=reg_eps),
        dual_cone_weights(regularised, targets),
        rtol=1e-9,
        atol=1e-12,
    )


def test_a_zero_gradient_keeps_its_target_weight():
    grads = random_grads(4, 9, 1)
    grads[2] = 0.0
    weights = weights_of(UPGrad(), grads)
    assert weights[2] == 0.25
    others = weights_of(UPGrad(), grads[[0, 1, 3]]) * 3 / 4  # the same projections, over 4
    torch.testing.assert_close(weights[[0, 1, 3]], others)


@pytest.mark.parametrize("aggregator", [UPGrad, DualProj])
def test_negative_reg_eps_is_rejected(aggregator):
    with pytest.raises(ValueError, match="reg_eps must be >= 0"):
        aggregator(reg_eps=-1.0)
