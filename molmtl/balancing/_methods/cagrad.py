"""CAGrad: the best worst-case improvement within a ball around the average gradient."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from molmtl.balancing._methods._gram import GramianWeightedAggregator, solve_on_host

#: divisor of the update for each ``rescale`` option of the official code (c = ``c``).
_RESCALES = {0: lambda c: 1.0, 1: lambda c: 1.0 + c**2, 2: lambda c: 1.0 + c}


class CAGrad(GramianWeightedAggregator):
    """Conflict-averse gradient descent.

    Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning", NeurIPS 2021.

    Finds the direction ``d`` maximising the worst task improvement ``min_i g_i . d`` within the
    ball ``|d - g_0| <= c |g_0|`` around the average gradient ``g_0``. Through the dual, with
    ``g_w = sum_i w_i g_i``, ``w`` minimises ``g_w . g_0 + c |g_0| |g_w|`` over the simplex and
    ``d = g_0 + c |g_0| g_w / |g_w|``; the update is ``d / (1 + c^2)`` for ``rescale=1``.

    Solver: the T-dimensional dual is solved with scipy's SLSQP (tolerance 1e-12, analytic
    gradient) on the Gram matrix scaled to unit mean diagonal, which makes the weights invariant
    to a common rescaling of the gradients; a failed solve raises RuntimeError. Copying the
    ``[T, T]`` Gram matrix to the CPU is the one small host sync. Degenerate inputs: when ``g_0``
    or ``g_w`` vanishes the update is ``g_0 / (1 + c^2)`` (the ball has no room or the direction
    is arbitrary); all-zero gradients give uniform weights.

    Args:
        c: radius of the ball relative to ``|g_0|`` (default 0.5, as the paper and LibMTL).
        rescale: 0 (``d``), 1 (``d / (1 + c^2)``, default) or 2 (``d / (1 + c)``).
    """

    def __init__(self, *, c: float = 0.5, rescale: int = 1) -> None:
        if c < 0:
            raise ValueError(f"CAGrad c must be >= 0, got {c}")
        if rescale not in _RESCALES:
            raise ValueError(f"CAGrad rescale must be one of {sorted(_RESCALES)}, got {rescale!r}")
        self.c = c
        self.rescale = rescale

    def gramian_weights(
        self, gram: Tensor, losses: Tensor, mask: Tensor, *, grads_dtype: torch.dtype
    ) -> Tensor:
        return solve_on_host(gram, mask, self._solve, like=gram)

    def _solve(self, gram: np.ndarray) -> np.ndarray:
        """``[n]`` weights from the ``[n, n]`` Gram matrix of the present tasks."""
        from scipy.optimize import minimize

        n_tasks = gram.shape[0]
        average = np.full(n_tasks, 1.0 / n_tasks)
        divisor = _RESCALES[self.rescale](self.c)
        scale = gram.diagonal().mean()
        if scale <= 0:
            return average / divisor
        gram = gram / scale
        radius = self.c * np.sqrt(max(average @ gram @ average, 0.0))  # c |g_0|
        towards_average = gram @ average  # g_i . g_0
        smoothing = 1e-12  # keeps |g_w| differentiable at 0 (the gram is scaled to O(1))

        def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
            combined = gram @ w
            norm = np.sqrt(w @ combined + smoothing)
            return w @ towards_average + radius * norm, towards_average + radius * combined / norm

        result = minimize(
            objective,
            average,
            jac=True,
            method="SLSQP",
            bounds=[(0.0, 1.0)] * n_tasks,
            constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": np.ones_like}],
            options={"ftol": 1e-12, "maxiter": 500},
        )
        if not result.success:
            raise RuntimeError(
                f"CAGrad: the dual problem did not solve (scipy SLSQP: {result.message}) for the "
                f"Gram matrix (scaled by 1/{scale:.3g}) {gram.tolist()}"
            )
        dual = np.clip(result.x, 0.0, None)
        dual_norm = np.sqrt(max(dual @ gram @ dual, 0.0))
        multiplier = radius / dual_norm if dual_norm > 1e-9 else 0.0
        return (average + multiplier * dual) / divisor
