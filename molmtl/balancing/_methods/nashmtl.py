"""Nash-MTL: the Nash bargaining solution between tasks, ``G alpha = 1 / alpha``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from molmtl.balancing._methods._gram import (
    GramianWeightedAggregator,
    min_norm_simplex_weights,
    solve_on_host,
)

#: the bargaining condition must hold to this relative accuracy, else the solve failed.
_CONDITION_TOLERANCE = 1e-6
#: Newton steps allowed per CCP round of the official solver (each round there is a full
#: interior-point solve); from a warm start the Newton method needs far fewer in practice.
_NEWTON_STEPS_PER_ROUND = 5
#: below this squared min-norm of the unit task gradients' convex hull, no direction improves
#: all tasks and the bargaining problem has no solution.
_NO_AGREEMENT = 1e-12


class NashMTL(GramianWeightedAggregator):
    """Multi-task learning as a bargaining game.

    Navon et al., "Multi-Task Learning as a Bargaining Game", ICML 2022.

    The weights ``alpha > 0`` solve the bargaining condition ``alpha_i (G alpha)_i = 1`` for the
    Gram matrix ``G`` of the task gradients, so the update ``d = sum_i alpha_i g_i`` gives every
    task the improvement ``g_i . d = 1 / alpha_i`` and has norm ``sqrt(T)``; as in the official
    code, ``d`` is then clipped to norm ``max_norm``. The official code and LibMTL back-propagate
    ``sum_t alpha_t L_t``, so the head of task ``t`` gets ``alpha_t`` times its gradient (never
    clipped); so does this one with ``weight_heads=True`` (the default, through
    :class:`GradientBalancer`), while ``weight_heads=False`` gives the heads the plain gradient.

    Solver: the official code approaches the condition by up to ``optim_niter`` convex (CCP)
    subproblems, each solved by cvxpy. The condition is exactly the stationarity condition of the
    strictly convex (self-concordant) ``F(alpha) = alpha^T G alpha / 2 - sum_i log(alpha_i)`` on
    ``alpha > 0``, whose unique minimiser is therefore the bargaining solution; here it is found
    to tolerance by damped Newton steps (numpy, float64) in the scale-free variables
    ``beta_i = alpha_i |g_i|``, for which the same condition holds with the cosine matrix in place
    of ``G`` (at most 5 steps per official CCP round, i.e. 100 by default; typically 3-12),
    warm-started from the better of the previous ``alpha`` and ``1 / |g_i|``, rescaled to the
    current gradients. A solution that misses the condition by more than 1e-6 relative raises
    RuntimeError. Copying the ``[T, T]`` Gram matrix to the CPU is the one small host sync.

    Degenerate inputs: a task with an exactly zero gradient cannot be bargained with and gets
    weight 0; when no direction improves all tasks (0 in the convex hull of the gradients, e.g.
    exactly opposite gradients) there is no bargaining solution and the weights are all 0.

    Args:
        update_weights_every: solve every this many calls, reusing ``alpha`` in between
            (default 1).
        optim_niter: the official CCP round limit (default 20); bounds the Newton steps.
        max_norm: clip the update to this norm; 0 disables clipping (default 1.0).
        weight_heads: scale each head's gradient by its task's unclipped ``alpha_t`` (default
            True, as the official code); False gives the heads the plain gradient.

    State: ``alpha_`` ``[T]`` float64 (the last solution, unclipped; None before the first
    solve) and ``step_`` (the number of training steps, :meth:`aggregate` calls; :meth:`weights`
    gives the next step's weights and changes neither).
    """

    def __init__(
        self,
        *,
        update_weights_every: int = 1,
        optim_niter: int = 20,
        max_norm: float = 1.0,
        weight_heads: bool = True,
    ) -> None:
        if update_weights_every < 1:
            raise ValueError(
                f"NashMTL update_weights_every must be >= 1, got {update_weights_every}"
            )
        if optim_niter < 1:
            raise ValueError(f"NashMTL optim_niter must be >= 1, got {optim_niter}")
        if max_norm < 0:
            raise ValueError(f"NashMTL max_norm must be >= 0 (0 disables clipping), got {max_norm}")
        self.update_weights_every = update_weights_every
        self.optim_niter = optim_niter
        self.max_norm = max_norm
        self.weight_heads = weight_heads
        self.alpha_: Tensor | None = None
        self.step_ = 0
        self._head_weights: Tensor | None = None

    def gramian_weights(
        self, gram: Tensor, losses: Tensor, mask: Tensor, *, grads_dtype: torch.dtype
    ) -> Tensor:
        return self._clipped(self._next_alpha(gram, mask), gram, mask)

    def _advance(
        self, gram: Tensor, losses: Tensor, mask: Tensor, *, grads_dtype: torch.dtype
    ) -> Tensor:
        # An absent task keeps its last weight (a warm start for when it returns).
        previous = self.alpha_
        self.alpha_ = self._next_alpha(gram, mask)
        if previous is not None and previous.shape == mask.shape:
            self.alpha_ = torch.where(mask, self.alpha_, previous.to(self.alpha_.device))
        self.step_ += 1
        self._head_weights = self.alpha_ * mask
        return self._clipped(self.alpha_, gram, mask)

    def head_weights(self) -> Tensor:
        """``[T]`` the unclipped ``alpha`` of the last training step, 0 for absent tasks."""
        if self._head_weights is None:
            raise RuntimeError("NashMTL.head_weights() is only defined after a training step")
        return self._head_weights

    def _next_alpha(self, gram: Tensor, mask: Tensor) -> Tensor:
        """``[T]`` float64 bargaining weights of this step: solved anew, or the last ones reused."""
        if self.alpha_ is not None and self.step_ % self.update_weights_every != 0:
            return self.alpha_
        previous = self.alpha_
        return solve_on_host(
            gram, mask, lambda sub_gram: self._solve(sub_gram, previous, mask), like=gram
        )

    def _clipped(self, alpha: Tensor, gram: Tensor, mask: Tensor) -> Tensor:
        """``alpha`` ``[T]`` of the present tasks, scaled so the update's norm is <= ``max_norm``."""
        alpha = alpha * mask
        if self.max_norm > 0:
            norm = (alpha @ gram @ alpha).clamp(min=0.0).sqrt()
            alpha = alpha * torch.where(norm > self.max_norm, self.max_norm / norm, 1.0)
        return alpha

    def _solve(self, gram: np.ndarray, previous: Tensor | None, mask: Tensor) -> np.ndarray:
        """``[n]`` bargaining weights from the ``[n, n]`` Gram matrix of the present tasks."""
        alpha = np.zeros(gram.shape[0])
        norms = np.sqrt(gram.diagonal())
        usable = norms > 0
        if not usable.any():
            return alpha
        norms = norms[usable]
        # With alpha_i = beta_i / |g_i| the condition reads beta * (C beta) = 1 for the cosine
        # matrix C: the same problem, scale-free and well conditioned.
        cosines = gram[np.ix_(usable, usable)] / np.outer(norms, norms)
        simplex = min_norm_simplex_weights(cosines)
        if simplex @ cosines @ simplex <= _NO_AGREEMENT:
            return alpha
        limit = _NEWTON_STEPS_PER_ROUND * self.optim_niter
        start = self._warm_start(cosines, previous, mask, usable, norms)
        solution = _damped_newton(cosines, start, limit)
        violation = np.abs(solution * (cosines @ solution) - 1.0).max()
        if not np.isfinite(violation) or violation > _CONDITION_TOLERANCE:
            raise RuntimeError(
                f"NashMTL: the bargaining condition alpha * (G alpha) = 1 is still violated by "
                f"{violation:.3g} after {limit} Newton steps; gradient norms {norms.tolist()}, "
                f"cosines {cosines.tolist()}. Raise optim_niter for such gradients."
            )
        alpha[usable] = solution / norms
        return alpha

    @staticmethod
    def _warm_start(
        cosines: np.ndarray,
        previous: Tensor | None,
        mask: Tensor,
        usable: np.ndarray,
        norms: np.ndarray,
    ) -> np.ndarray:
        """The better of the previous solution and the one for orthogonal gradients, each
        rescaled to fit best (in the cosine variables ``beta = alpha * |g|``)."""
        candidates = [np.ones(cosines.shape[0])]
        if previous is not None and previous.shape == mask.shape:
            earlier = previous.cpu().numpy()[mask.cpu().numpy()][usable] * norms
            if (earlier > 0).all():
                candidates.append(earlier)
        # argmin_t F(t b) in closed form: t^2 b^T C b = n.
        rescaled = [b * np.sqrt(cosines.shape[0] / (b @ cosines @ b)) for b in candidates]
        return min(rescaled, key=lambda b: 0.5 * b @ cosines @ b - np.log(b).sum())

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"step": self.step_}
        if self.alpha_ is not None:
            state["alpha"] = self.alpha_.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_ = int(state["step"])
        alpha = state.get("alpha")
        self.alpha_ = None if alpha is None else alpha.clone()


def _damped_newton(gram: np.ndarray, alpha: np.ndarray, max_steps: int) -> np.ndarray:
    """Minimise ``F(alpha) = alpha^T G alpha / 2 - sum log(alpha)`` from ``alpha > 0``
    (``gram`` is the cosine matrix when called from :class:`NashMTL`).

    ``F`` is self-concordant, so Newton steps damped by ``1 / (1 + decrement)`` stay in
    ``alpha > 0`` and converge globally, quadratically near the solution.
    """
    for _ in range(max_steps):
        gradient = gram @ alpha - 1.0 / alpha
        if np.abs(alpha * gradient).max() < 1e-12:  # alpha_i (G alpha)_i - 1
            break
        step = np.linalg.solve(gram + np.diag(1.0 / alpha**2), gradient)
        decrement = np.sqrt(max(gradient @ step, 0.0))
        if decrement < 1e-13:  # rounding level: no further progress possible
            break
        alpha = alpha - (step / (1.0 + decrement) if decrement > 0.25 else step)
    return alpha
