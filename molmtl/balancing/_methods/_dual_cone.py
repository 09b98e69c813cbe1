"""Projections onto the dual cone of the task gradients, from their Gram matrix (UPGrad, DualProj).

The dual cone of the gradients ``g_1 .. g_n`` is ``{x : g_j . x >= 0 for every j}``, the
directions that harm no task to first order. By Proposition 1 of Quinton & Rey (2024), the
projection of ``sum_i u_i g_i`` onto it is ``sum_i v_i g_i`` with
``v = argmin_{v >= u} v^T G v`` for the Gram matrix ``G``.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from molmtl.balancing._methods._gram import HostSolvedGramAggregator


class DualConeAggregator(HostSolvedGramAggregator):
    """Base of the aggregators whose update is a sum of projections onto the dual cone.

    Subclasses give the ``[k, n]`` coefficients of the vectors to project (:meth:`targets`);
    the weights are the sum of their projections' weights.

    Args:
        reg_eps: solve for ``G / trace(G) + reg_eps I`` (default 0: the exact projection).
    """

    def __init__(self, *, reg_eps: float = 0.0) -> None:
        if reg_eps < 0:
            raise ValueError(f"{type(self).__name__} reg_eps must be >= 0, got {reg_eps}")
        self.reg_eps = reg_eps

    @abstractmethod
    def targets(self, n_tasks: int) -> np.ndarray:
        """``[k, n_tasks]`` coefficients of the ``k`` vectors to project, over the present tasks."""

    def _solve(self, gram: np.ndarray) -> np.ndarray:
        """``[n]`` weights from the ``[n, n]`` Gram matrix of the present tasks."""
        projections = dual_cone_weights(gram, self.targets(gram.shape[0]), self.reg_eps)
        return projections.sum(axis=0)


def dual_cone_weights(gram: np.ndarray, targets: np.ndarray, reg_eps: float = 0.0) -> np.ndarray:
    """Weights of the projections of ``targets @ grads`` onto the dual cone of the gradients.

    Writing ``v = u + z``, each projection is the non-negative least-squares problem
    ``min_{z >= 0} |R (u + z)|^2`` with ``R^T R = G``, solved exactly (Lawson-Hanson active set,
    finite) with ``R`` taken from the cosine matrix and ``z`` measured in units of each gradient's
    own norm, so gradients whose norms span many orders of magnitude are all solved to rounding.

    Args:
        gram: ``[n, n]`` positive semi-definite Gram matrix of the gradients.
        targets: ``[k, n]`` the ``u`` to project, one per row (non-negative).
        reg_eps: ``eps`` of torchjd's regularisation: the problem is solved for
            ``G / trace(G) + eps I`` instead of ``G`` (0: the exact projection).

    Returns:
        ``[k, n]`` the ``v``, one per row of ``targets`` (``v = u`` where a gradient is zero).
    """
    norms = np.sqrt(np.clip(gram.diagonal(), 0.0, None))
    largest = norms.max()
    if largest <= 0:
        return targets.copy()
    relative = norms / largest
    usable = relative > 0
    scales = np.where(usable, relative, 1.0)
    cosines = gram / (largest**2 * np.outer(scales, scales))
    np.fill_diagonal(cosines, 1.0)
    eigenvalues, eigenvectors = np.linalg.eigh(cosines)
    root = np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None] * eigenvectors.T
    # Columns y = z * scale: a zero gradient's column is 0 (its z stays 0).
    design = root * usable
    rhs = -(root @ (relative[:, None] * targets.T))
    if reg_eps > 0:
        ridge = np.sqrt(reg_eps * (relative**2).sum())  # sqrt(eps * trace), in these units
        design = np.vstack([design, np.diag(ridge / scales)])
        rhs = np.vstack([rhs, -ridge * targets.T])
    lifts = np.stack([_nonnegative_least_squares(design, column) for column in rhs.T])
    return targets + lifts / scales


def _nonnegative_least_squares(design: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls  # scipy is imported only by the methods that solve

    try:
        solution, _ = nnls(design, rhs, maxiter=50 * design.shape[1])
    except RuntimeError as error:
        raise RuntimeError(
            f"dual-cone projection (scipy.optimize.nnls) failed for a {design.shape[1]}-task "
            f"problem: {error}"
        ) from error
    return solution
