"""SDMGrad: the min-norm direction pulled towards the average gradient."""

from __future__ import annotations

import numpy as np

from molmtl.balancing._methods._gram import (
    HostSolvedGramAggregator,
    min_norm_simplex_weights,
)


class SDMGrad(HostSolvedGramAggregator):
    """Stochastic direction-oriented multi-objective gradient descent.

    Xiao et al., "Direction-oriented Multi-objective Learning: Simple and Provable Stochastic
    Algorithms", NeurIPS 2023.

    With the task gradients ``g_i``, their average ``g_0`` and ``g_w = sum_i w_i g_i``, ``w``
    minimises ``|g_w + lamda g_0|^2`` over the probability simplex (the paper's dual problem)
    and the update is ``(g_w + lamda g_0) / (1 + lamda)``, i.e. weights
    ``(w + lamda / T) / (1 + lamda)``, which sum to 1 (as in LibMTL; the authors' code
    multiplies the update by T).

    Solver: since ``sum_i w_i = 1``, ``g_w + lamda g_0 = sum_i w_i (g_i + lamda g_0)``, so ``w``
    is exactly the min-norm point of the convex hull of the shifted gradients, found by the
    same exact non-negative least-squares solve as MGDA on their ``[T, T]`` Gram matrix (one
    small host sync). The authors' code and LibMTL approximate ``w`` by 20 projected SGD steps
    (learning rate 5 or 10, momentum 0.5) warm-started from the previous step; that
    approximation is why they differ from this solution. The paper's stochastic estimator
    takes the gradients of three independent batches; a balancer sees one batch, so all three
    are that batch's gradients (the deterministic method). The weights are invariant to a
    common rescaling of the gradients.

    Args:
        lamda: lambda, the pull towards the average gradient (0.3, the paper's, LibMTL's and the
            authors' code default; 0 gives MGDA's min-norm point).
    """

    def __init__(self, *, lamda: float = 0.3) -> None:
        if lamda < 0:
            raise ValueError(f"SDMGrad lamda must be >= 0, got {lamda}")
        self.lamda = lamda

    def _solve(self, gram: np.ndarray) -> np.ndarray:
        """``[n]`` weights from the ``[n, n]`` Gram matrix of the present tasks."""
        n_tasks = gram.shape[0]
        towards_average = gram.mean(axis=1)  # g_i . g_0
        average_norm = towards_average.mean()  # |g_0|^2
        pull = self.lamda
        # Gram matrix of the shifted gradients g_i + lamda g_0.
        shifted = (
            gram
            + pull * (towards_average[:, None] + towards_average[None, :])
            + pull**2 * average_norm
        )
        simplex = min_norm_simplex_weights(shifted)
        return (simplex + pull / n_tasks) / (1.0 + pull)
