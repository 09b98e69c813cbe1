"""FairGrad: its optimality condition on badly scaled gradients, a second solver, and its options."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import least_squares
from test_aggregators import SHAPES, random_grads, weights_of

from molmtl.balancing import FairGrad, NashMTL

ALPHAS = [0.5, 1.0, 2.0, 5.0]


def spread_grads(n_tasks: int, seed: int, decades: float) -> torch.Tensor:
    """Random gradients whose norms span ``10**decades`` (QM9's targets span about 10^6)."""
    scales = torch.logspace(-decades / 2, decades / 2, n_tasks, dtype=torch.float64)
    permutation = torch.randperm(n_tasks, generator=torch.Generator().manual_seed(seed))
    return random_grads(n_tasks, 64, seed) * scales[permutation][:, None]


def raw_weights(grads: torch.Tensor, alpha: float) -> torch.Tensor:
    """The solution ``w`` of ``G w = w^(-1/α)``: the weights without the factor T and clipping."""
    return weights_of(FairGrad(alpha=alpha, max_norm=0.0), grads) / grads.shape[0]


def condition_violation(grads: torch.Tensor, weights: torch.Tensor, alpha: float) -> float:
    """``max_i |(G w)_i / w_i^(-1/α) - 1|``, computed from the gradients themselves."""
    gram = grads @ grads.T
    return ((gram @ weights) * weights ** (1 / alpha) - 1).abs().max().item()


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize(("n_tasks", "n_params", "seed"), SHAPES)
def test_fairgrad_satisfies_the_fair_condition(alpha, n_tasks, n_params, seed):
    grads = random_grads(n_tasks, n_params, seed)
    weights = raw_weights(grads, alpha)
    assert (weights > 0).all()
    assert condition_violation(grads, weights, alpha) < 1e-10


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("seed", range(5))
def test_fairgrad_solves_gradient_norms_spanning_a_million(alpha, seed):
    grads = spread_grads(11, seed, decades=6)
    assert condition_violation(grads, raw_weights(grads, alpha), alpha) < 1e-9


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize(("n_tasks", "n_params", "seed"), SHAPES)
def test_fairgrad_agrees_with_a_least_squares_solve(alpha, n_tasks, n_params, seed):
    """A second solver: scipy least_squares on the relative residual in log-weights. (On the
    raw residual ``G w - w^(-1/α)``, as the authors' code and LibMTL solve it, least_squares
    stops 1% off the condition for SHAPES[0] and α = 5.)"""
    grads = random_grads(n_tasks, n_params, seed)
    gram = (grads @ grads.T).numpy()
    reference = least_squares(
        lambda log_w: (gram @ np.exp(log_w)) * np.exp(log_w / alpha) - 1,
        np.full(n_tasks, -np.log(n_tasks)),
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
        max_nfev=10_000,
    )
    assert np.abs(reference.fun).max() < 1e-10
    np.testing.assert_allclose(raw_weights(grads, alpha).numpy(), np.exp(reference.x), rtol=1e-8)


@pytest.mark.parametrize("seed", range(4))
def test_fairgrad_with_alpha_one_is_the_nash_bargaining_solution(seed):
    grads = spread_grads(6, seed, decades=4)
    torch.testing.assert_close(
        raw_weights(grads, 1.0), weights_of(NashMTL(max_norm=0.0), grads), rtol=1e-8, atol=0
    )


@pytest.mark.parametrize("alpha", ALPHAS)
def test_fairgrad_weights_scale_as_the_condition_says(alpha):
    """``(s^2 G) w' = w'^(-1/α)`` is solved by ``w' = s^(-2α/(α+1)) w``."""
    grads = random_grads(5, 12, 4)
    factor = 30.0
    torch.testing.assert_close(
        raw_weights(grads * factor, alpha),
        raw_weights(grads, alpha) * factor ** (-2 * alpha / (alpha + 1)),
    )


@pytest.mark.parametrize("max_norm", [0.5, 1.0, 1e3])
def test_fairgrad_scales_by_the_task_count_then_clips(max_norm):
    grads = random_grads(5, 12, 3)
    unclipped = 5 * raw_weights(grads, 2.0) @ grads
    update = weights_of(FairGrad(max_norm=max_norm), grads) @ grads
    expected = unclipped * min(1.0, max_norm / unclipped.norm().item())
    torch.testing.assert_close(update, expected)


def test_fairgrad_zero_gradient_gets_zero_weight_and_is_ignored():
    grads = random_grads(4, 9, 2)
    grads[1] = 0.0
    weights = weights_of(FairGrad(max_norm=0.0), grads)
    rest = weights_of(FairGrad(max_norm=0.0), grads[[0, 2, 3]])
    assert weights[1] == 0
    # The factor T counts the present tasks, the zero gradient's included.
    torch.testing.assert_close(weights[[0, 2, 3]], rest * 4 / 3)


def test_fairgrad_without_a_common_improving_direction_gives_zero_weights():
    base = random_grads(1, 6, 0)[0]
    assert (weights_of(FairGrad(), torch.stack([base, -base])) == 0).all()


def test_fairgrad_rejects_bad_options():
    with pytest.raises(ValueError, match="alpha must be > 0"):
        FairGrad(alpha=0.0)
    with pytest.raises(ValueError, match="max_norm"):
        FairGrad(max_norm=-1.0)


def test_fairgrad_failed_solve_raises(monkeypatch):
    import molmtl.balancing._methods.fairgrad as fairgrad_module

    monkeypatch.setattr(fairgrad_module, "_fair_shares", lambda cosines, c, alpha: c)
    with pytest.raises(RuntimeError, match="α-fair condition"):
        weights_of(FairGrad(), random_grads(4, 9, 0))
