"""DualProj: the mean gradient projected onto the dual cone of the task gradients."""

from __future__ import annotations

import numpy as np

from molmtl.balancing._methods._dual_cone import DualConeAggregator


class DualProj(DualConeAggregator):
    """The mean gradient projected onto the dual cone of the task gradients.

    Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual Learning", NeurIPS 2017
    (their Equation 11); as a multi-task aggregator in Quinton & Rey, "Jacobian Descent for
    Multi-Objective Optimization", arXiv:2406.16232 (2024), and torchjd's ``DualProj``.

    The update is the projection of ``sum_i g_i / T`` onto ``{x : g_j . x >= 0 for all j}``,
    the direction closest to the mean gradient that harms no task to first order.

    Solver: the dual problem ``v = argmin_{v >= 1 / T} v^T G v``, solved exactly as one
    non-negative least-squares problem in variables scaled by each gradient's norm (as
    :class:`UPGrad`; see :func:`dual_cone_weights`), on the ``[T, T]`` Gram matrix copied to the
    CPU (one small host sync). ``reg_eps=1e-4`` reproduces torchjd's regularised problem (see
    :class:`UPGrad`); the weights are invariant to a common rescaling of the gradients.

    Args:
        reg_eps: solve for ``G / trace(G) + reg_eps I`` (default 0: the exact projection).
    """

    def targets(self, n_tasks: int) -> np.ndarray:
        return np.full((1, n_tasks), 1.0 / n_tasks)
