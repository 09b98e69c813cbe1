"""FairGrad: α-fair shares of the update among the tasks, ``G w = w^(-1/α)``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from molmtl.balancing._methods._gram import (
    HostSolvedGramAggregator,
    min_norm_simplex_weights,
)

#: the α-fair condition must hold to this relative accuracy, else the solve failed.
_CONDITION_TOLERANCE = 1e-6
#: Newton steps allowed; from the start used here 5-30 are typical.
_NEWTON_STEPS = 200
#: below this squared min-norm of the unit task gradients' convex hull, no direction improves
#: every task and the α-fair condition has no solution.
_NO_AGREEMENT = 1e-12


class FairGrad(HostSolvedGramAggregator):
    """Fair resource allocation in multi-task learning.

    Ban & Ji, "Fair Resource Allocation in Multi-Task Learning", ICML 2024.

    The update ``d = sum_i w_i g_i`` maximises the α-fair utility
    ``sum_i (g_i . d)^(1 - α) / (1 - α)`` of the tasks' improvements; its optimality condition,
    which the paper and the authors' code solve, is ``(G w)_i = w_i^(-1/α)`` for the Gram matrix
    ``G``. α = 1 is proportional fairness (Nash-MTL's bargaining condition), larger α moves
    towards max-min fairness. As in the authors' code, the update is then multiplied by the
    number of (present) tasks and clipped to norm ``max_norm``.

    Solver: the condition is the stationarity condition of the strictly convex
    ``F(w) = w^T G w / 2 - sum_i h(w_i)`` with ``h'(w) = w^(-1/α)`` on ``w > 0``, whose unique
    minimiser is found by damped Newton steps with a backtracking line search (numpy, float64) in
    the variables ``x_i = w_i |g_i|`` (gradients scaled to a largest norm of 1), for which the
    quadratic part is the cosine matrix: well conditioned whatever the spread of the gradient
    norms. A solution that misses the condition by more than 1e-6 relative raises RuntimeError.
    The authors' code and LibMTL run scipy's ``least_squares`` on the raw Gram matrix from
    uniform weights with its default tolerances instead. Copying the ``[T, T]`` Gram matrix to
    the CPU is the one small host sync.

    The heads get the plain gradient of their loss (the :class:`GradientBalancer` convention,
    and what the authors' code does); LibMTL back-propagates ``sum_t w_t L_t`` instead, which
    scales head ``t``'s gradient by ``w_t`` and leaves out the factor T and the clipping.

    Degenerate inputs: a task with an exactly zero gradient gets weight 0; when no direction
    improves every task (0 in the convex hull of the gradients, e.g. exactly opposite ones) the
    condition has no solution and the weights are all 0.

    Args:
        alpha: α > 0 (default 2.0, what the authors' run scripts use for every benchmark, QM9
            included; the default of their argument parser and of LibMTL is 1.0).
        max_norm: clip the update to this norm, as the authors' code does; 0 disables clipping
            (default 1.0).
    """

    def __init__(self, *, alpha: float = 2.0, max_norm: float = 1.0) -> None:
        if not alpha > 0:
            raise ValueError(f"FairGrad alpha must be > 0, got {alpha}")
        if max_norm < 0:
            raise ValueError(
                f"FairGrad max_norm must be >= 0 (0 disables clipping), got {max_norm}"
            )
        self.alpha = alpha
        self.max_norm = max_norm

    def _solve(self, gram: np.ndarray) -> np.ndarray:
        """``[n]`` weights from the ``[n, n]`` Gram matrix of the present tasks."""
        n_tasks = gram.shape[0]
        weights = np.zeros(n_tasks)
        norms = np.sqrt(np.clip(gram.diagonal(), 0.0, None))
        usable = norms > 0
        if not usable.any():
            return weights
        cosines = gram[np.ix_(usable, usable)] / np.outer(norms[usable], norms[usable])
        simplex = min_norm_simplex_weights(cosines)
        if simplex @ cosines @ simplex <= _NO_AGREEMENT:
            return weights
        largest = norms.max()
        relative = norms[usable] / largest
        # For G / largest^2 and x = w * relative, the condition reads (C x)_i = c_i x_i^(-1/α).
        coefficients = relative ** (1.0 / self.alpha - 1.0)
        shares = _fair_shares(cosines, coefficients, self.alpha)
        self._check(cosines, coefficients, shares, norms[usable])
        # w solves the condition for G / largest^2; for G it is scaled by largest^(-2α/(α+1)).
        weights[usable] = shares / relative * largest ** (-2.0 * self.alpha / (self.alpha + 1.0))
        weights *= n_tasks  # the authors' code: the update of the summed losses
        norm = np.sqrt(max(weights @ gram @ weights, 0.0))
        if self.max_norm > 0 and norm > self.max_norm:
            weights *= self.max_norm / norm
        return weights

    def _check(
        self, cosines: np.ndarray, coefficients: np.ndarray, shares: np.ndarray, norms: np.ndarray
    ) -> None:
        """Raise RuntimeError unless ``shares`` satisfy the condition to the tolerance."""
        violation = np.abs((cosines @ shares) * shares ** (1.0 / self.alpha) / coefficients - 1.0)
        if not np.isfinite(violation).all() or violation.max() > _CONDITION_TOLERANCE:
            raise RuntimeError(
                f"FairGrad: the α-fair condition G w = w^(-1/α) is still violated by "
                f"{np.nanmax(violation):.3g} (relative) after {_NEWTON_STEPS} Newton steps; "
                f"alpha {self.alpha}, gradient norms {norms.tolist()}, cosines {cosines.tolist()}"
            )


def _fair_shares(cosines: np.ndarray, coefficients: np.ndarray, alpha: float) -> np.ndarray:
    """``x > 0`` with ``(C x)_i = c_i x_i^(-1/α)``, by damped Newton steps.

    ``x`` minimises the strictly convex ``F(x) = x^T C x / 2 - sum_i c_i psi(x_i)`` with
    ``psi'(x) = x^(-1/α)``; the start is the best multiple of the solution for orthogonal
    gradients, ``x_i = c_i^(α/(α+1))``.
    """
    exponent = 1.0 / alpha
    power = 1.0 - exponent

    def objective(x: np.ndarray) -> float:
        # (x^p - 1) / p, computed stably, tends to log x as p -> 0.
        utility = np.log(x) if power == 0 else np.expm1(power * np.log(x)) / power
        return 0.5 * x @ cosines @ x - coefficients @ utility

    start = coefficients ** (alpha / (alpha + 1.0))
    fit = (coefficients @ start**power) / (start @ cosines @ start)
    x = start * fit ** (alpha / (alpha + 1.0))
    for _ in range(_NEWTON_STEPS):
        pull = coefficients * x**-exponent
        gradient = cosines @ x - pull
        if np.abs(gradient / pull).max() < 1e-13:
            break
        step = np.linalg.solve(cosines + np.diag(exponent * pull / x), gradient)
        x = _damped(objective, x, step, decrease=gradient @ step)
    return x


def _damped(
    objective: Callable[[np.ndarray], float], x: np.ndarray, step: np.ndarray, decrease: float
) -> np.ndarray:
    """``x - t step`` for the largest ``t`` in 1, 1/2, 1/4, ... that keeps ``x > 0`` and
    decreases ``objective`` enough (Armijo); the full feasible step once the predicted decrease
    is below what ``objective`` can resolve."""
    shrinking = step > 0
    size = min(1.0, 0.99 * (x[shrinking] / step[shrinking]).min()) if shrinking.any() else 1.0
    value = objective(x)
    if decrease <= 1e-12 * (1.0 + abs(value)):
        return x - size * step
    # Relative to the feasible size, which is tiny where x spans many orders of magnitude.
    smallest = 1e-12 * size
    while size > smallest:
        candidate = x - size * step
        if objective(candidate) <= value - 0.25 * size * decrease:
            return candidate
        size /= 2
    return x
