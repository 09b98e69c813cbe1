"""UPGrad: each task gradient projected onto the dual cone of all of them, then averaged."""

from __future__ import annotations

import numpy as np

from molmtl.balancing._methods._dual_cone import DualConeAggregator


class UPGrad(DualConeAggregator):
    """Unconflicting projection of gradients.

    Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", arXiv:2406.16232 (2024);
    torchjd's ``UPGrad``.

    Each task gradient, weighted ``1 / T``, is projected onto the dual cone
    ``{x : g_j . x >= 0 for all j}`` (the directions that harm no task to first order), and the
    update is the sum of the projections: ``sum_i pi(g_i / T)``. Every task improves to first
    order (``g_j . update >= 0``), and without conflicts the update is the mean gradient.

    Solver: each projection is the dual problem ``v = argmin_{v >= e_i / T} v^T G v``
    (Proposition 1 of the paper), solved exactly as a non-negative least-squares problem in
    variables scaled by each gradient's norm (see :func:`dual_cone_weights`), so gradients whose
    norms span 10^6 are projected to rounding; T solves on the ``[T, T]`` Gram matrix, copied to
    the CPU (one small host sync). The weights are invariant to a common rescaling of the
    gradients. torchjd's default solver needs a positive-definite matrix and solves for
    ``G / trace(G) + 1e-4 I``; that regularisation leaves unprotected the tasks whose squared
    gradient norm is below about 1e-4 of the total, so it is off by default here
    (``reg_eps=1e-4`` reproduces torchjd). torchjd also returns the mean gradient when
    ``trace(G) < 1e-4`` (its ``norm_eps``); here the weights never depend on the gradients'
    overall scale.

    Degenerate inputs: a zero gradient constrains nothing and keeps the weight ``1 / T`` of its
    own (zero) contribution; all-zero gradients give weights ``1 / T``.

    Args:
        reg_eps: solve for ``G / trace(G) + reg_eps I`` (default 0: the exact projection).
    """

    def targets(self, n_tasks: int) -> np.ndarray:
        return np.eye(n_tasks) / n_tasks
