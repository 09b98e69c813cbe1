"""What the Gram-matrix aggregators share: their base class, the masked Gram matrix, host-side
solves on it, and seeded random task orders.

Every :class:`GramianWeightedAggregator` reduces the ``[T, P]`` gradient matrix to its ``[T, T]``
Gram matrix once (``O(T^2 P)``, one pass over the gradients) and then works on that small matrix
alone, tracking the update as a linear combination of the task gradients; the only other pass
over the gradients is the final ``weights @ grads``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from molmtl.balancing._base import Aggregator
from molmtl.balancing._numerics import all_on_host, plain_is_exact, scaled_rows


class GramianWeightedAggregator(Aggregator):
    """An aggregator whose weights depend on the gradients only through their Gram matrix.

    The base computes the ``[T, T]`` Gram matrix ``grads @ grads.T`` of the present tasks once
    (:func:`masked_gram`) and hands it to :meth:`gramian_weights`; the update is
    ``weights @ grads``. Stateful methods (random task orders, moving targets, reused solutions)
    also override :meth:`_advance`, the training step that moves their state on;
    :meth:`gramian_weights` must leave the state as it is.
    """

    def weights(self, grads: Tensor, losses: Tensor, mask: Tensor) -> Tensor:
        gram = masked_gram(grads, mask)
        return self.gramian_weights(gram, losses, mask, grads_dtype=grads.dtype).to(grads.dtype)

    def aggregate(self, grads: Tensor, losses: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        gram, unit_rows, scales = _scaled_gram(grads, mask)
        weights = self._advance(gram, losses, mask, grads_dtype=grads.dtype)
        # (w_t s_t) (g_t / s_t): bit for bit w @ g, and finite where a weight alone is not
        # representable in the gradients' dtype (a gradient 10^40 times shorter than another).
        scaled_weights = torch.where(mask, weights.to(scales.dtype) * scales, 0.0)
        update = scaled_weights.to(grads.dtype) @ unit_rows
        return update, weights.to(grads.dtype)

    @abstractmethod
    def gramian_weights(
        self, gram: Tensor, losses: Tensor, mask: Tensor, *, grads_dtype: torch.dtype
    ) -> Tensor:
        """Per-task coefficients from the Gram matrix, without side effects.

        Args:
            gram: ``[T, T]`` float64 Gram matrix of the gradients, 0 in the rows and columns of
                absent tasks (see :func:`masked_gram`).
            losses: ``[T]`` the task losses (see :meth:`Aggregator.weights`).
            mask: ``[T]`` bool, True for tasks with labels in this batch.
            grads_dtype: the gradients' dtype, whose rounding level the products in ``gram``
                have (for rank tolerances).

        Returns:
            ``[T]`` coefficients (any floating dtype; cast to ``grads_dtype`` by the caller),
            0 where ``mask`` is False.
        """

    def _advance(
        self, gram: Tensor, losses: Tensor, mask: Tensor, *, grads_dtype: torch.dtype
    ) -> Tensor:
        """The coefficients of a training step, moving the method's state on (if it has one)."""
        return self.gramian_weights(gram, losses, mask, grads_dtype=grads_dtype)


def masked_gram(grads: Tensor, mask: Tensor) -> Tensor:
    """Gram matrix of the task gradients, with absent tasks removed.

    Args:
        grads: ``[T, P]`` per-task gradients.
        mask: ``[T]`` bool, True for tasks present in the batch.

    Returns:
        ``[T, T]`` float64 ``grads @ grads.T`` (computed in ``grads``' dtype; for rows whose
        products would overflow or underflow, on rows scaled by powers of two, see
        :mod:`molmtl.balancing._numerics`), exactly symmetric, with the rows and columns
        of tasks where ``mask`` is False set to 0 (even if their gradients hold NaN).
    """
    return _scaled_gram(grads, mask)[0]


def _scaled_gram(grads: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`masked_gram`, and the ``[T, P]`` scaled rows and ``[T]`` float64 scales it used
    (``grads = scales[:, None] * rows``)."""
    if grads.ndim != 2:
        raise ValueError(f"grads must be a [T, P] matrix, got shape {list(grads.shape)}")
    if mask.shape != grads.shape[:1] or mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a bool tensor of shape [{grads.shape[0]}], "
            f"got {mask.dtype} of shape {list(mask.shape)}"
        )
    gram = _gram(grads)
    # Absent tasks' rows are zeroed below, whatever they hold.
    exact = plain_is_exact(gram.diagonal().clamp(min=0.0).sqrt(), grads.dtype) | ~mask
    unit_rows, scales = grads, torch.ones_like(exact, dtype=torch.float64)
    if not all_on_host(exact):
        # Some products overflowed or underflowed in the gradients' dtype: form them anew on
        # rows scaled by powers of two (see molmtl.balancing._numerics).
        unit_rows, scales = scaled_rows(grads)
        scaled = _gram(unit_rows) * scales[:, None] * scales[None, :]
        gram = torch.where(exact[:, None] & exact[None, :], gram, scaled)
    gram = (gram + gram.T) / 2  # a float32 product need not be: solvers assume it
    pair_present = mask[:, None] & mask[None, :]
    return torch.where(pair_present, gram, 0.0), unit_rows, scales


#: columns per block of the CPU Gram product (a [T, 16384] float32 block stays in L2 cache).
_CPU_BLOCK = 16384


def _gram(grads: Tensor) -> Tensor:
    """``[T, T]`` float64 ``grads @ grads.T``, products in ``grads``' dtype."""
    if grads.device.type != "cpu" or grads.shape[1] <= _CPU_BLOCK:
        return (grads @ grads.T).to(torch.float64)
    # CPU BLAS handles the long flat product poorly: cache-sized blocks summed in float64 are
    # about twice as fast for T = 11, P = 617k, and far more accurate.
    gram = grads.new_zeros(grads.shape[0], grads.shape[0], dtype=torch.float64)
    for block in grads.split(_CPU_BLOCK, dim=1):
        gram += (block @ block.T).to(torch.float64)
    return gram


def solve_on_host(
    gram: Tensor, mask: Tensor, solver: Callable[[np.ndarray], np.ndarray], like: Tensor
) -> Tensor:
    """Run a numpy/scipy ``solver`` on the Gram matrix of the present tasks, on the CPU.

    Copying the ``[T, T]`` matrix to the host is the one (small) sync that methods needing an
    iterative solver cannot avoid.

    Args:
        gram: ``[T, T]`` float64 Gram matrix (see :func:`masked_gram`).
        mask: ``[T]`` bool, True for present tasks.
        solver: maps the ``[n, n]`` Gram matrix of the ``n >= 1`` present tasks to their ``[n]``
            weights.
        like: tensor whose dtype and device the result takes.

    Returns:
        ``[T]`` weights, 0 for absent tasks.
    """
    present = mask.cpu().numpy()
    weights = np.zeros(present.shape[0])
    if present.any():
        weights[present] = solver(gram.cpu().numpy()[np.ix_(present, present)])
    return torch.as_tensor(weights, device=like.device).to(like.dtype)


def min_norm_simplex_weights(gram: np.ndarray) -> np.ndarray:
    """Exact min-norm point of the convex hull of vectors given by their Gram matrix.

    Solves ``min_w w^T G w`` over the probability simplex as one non-negative least-squares
    problem (Lawson-Hanson active set, finite and exact up to rounding): with ``R^T R = G``,
    ``min_{u >= 0} |R u|^2 + (1^T u - 1)^2`` is solved by ``u = w* / (1 + w*^T G w*)``, so the
    simplex solution is ``u / sum(u)``; this holds for singular ``G`` too.

    Args:
        gram: ``[n, n]`` positive semi-definite Gram matrix.

    Returns:
        ``[n]`` weights, non-negative, summing to 1 (uniform when all vectors are zero).
    """
    n_vectors = gram.shape[0]
    norms = np.sqrt(np.clip(gram.diagonal(), 0.0, None))
    if norms.max() <= 0:
        return np.full(n_vectors, 1.0 / n_vectors)
    # R = R_C diag(|g|) with R_C^T R_C the cosine matrix keeps short vectors exact relative to
    # their own length. Scaling by the smallest non-zero norm (which bounds the min norm) leaves
    # the minimiser unchanged and keeps |R u|^2 from vanishing beside (1^T u - 1)^2 in rounding
    # when the norms span orders of magnitude (scaled by the largest, a spread of 10^6 cost 1e-4).
    smallest = norms[norms > 0].min()
    safe_norms = np.where(norms > 0, norms, 1.0)
    cosines = gram / np.outer(safe_norms, safe_norms)
    np.fill_diagonal(cosines, 1.0)
    eigenvalues, eigenvectors = np.linalg.eigh(cosines)
    root = np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None] * eigenvectors.T * (norms / smallest)
    design = np.vstack([root, np.ones((1, n_vectors))])
    target = np.zeros(n_vectors + 1)
    target[-1] = 1.0
    try:
        lifted, _ = _nnls(design, target)
    except RuntimeError as error:
        raise RuntimeError(
            f"min-norm solve (scipy.optimize.nnls) failed on a {n_vectors}x{n_vectors} Gram "
            f"matrix with diagonal {gram.diagonal().tolist()}: {error}"
        ) from error
    return lifted / lifted.sum()


def _nnls(design: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    from scipy.optimize import nnls  # scipy is imported only by the methods that solve

    return nnls(design, target, maxiter=50 * design.shape[1])


class TaskOrders:
    """Random orders in which each task visits the others (PCGrad, GradVac).

    Drawn from a private generator on the gradients' device (no host copy, no sync), seeded
    from ``seed`` or, when ``seed`` is None, from torch's global RNG at construction so that
    ``torch.manual_seed`` controls it. The orders do not depend on ``torch.get_default_dtype()``.
    The generator's state is part of :meth:`state_dict`, so a resumed run draws the same orders
    as an uninterrupted one (on the same device type).
    """

    def __init__(self, seed: int | None = None) -> None:
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        self.seed = int(seed)
        self._generator: torch.Generator | None = None
        self._pending_state: Tensor | None = None

    def draw(self, n_tasks: int, device: torch.device, *, include_self: bool) -> Tensor:
        """``[T, T]`` (``include_self``) or ``[T, T-1]`` long: row ``i`` is task ``i``'s order."""
        return _orders(self._generator_on(device), n_tasks, device, include_self)

    def peek(self, n_tasks: int, device: torch.device, *, include_self: bool) -> Tensor:
        """The orders the next :meth:`draw` will return, leaving the generator as it is."""
        state = self._pending_state
        if state is None and self._generator is not None and self._generator.device == device:
            state = self._generator.get_state()
        generator = torch.Generator(device=device)
        if state is None:
            generator.manual_seed(self.seed)
        else:
            generator.set_state(state)
        return _orders(generator, n_tasks, device, include_self)

    def _generator_on(self, device: torch.device) -> torch.Generator:
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.seed)
        if self._pending_state is not None:
            self._generator.set_state(self._pending_state)
            self._pending_state = None
        return self._generator

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"seed": self.seed}
        rng_state = self._pending_state
        if self._generator is not None and rng_state is None:
            rng_state = self._generator.get_state()
        if rng_state is not None:
            state["rng_state"] = rng_state.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed = int(state["seed"])
        self._generator = None
        self._pending_state = state.get("rng_state")


def _orders(
    generator: torch.Generator, n_tasks: int, device: torch.device, include_self: bool
) -> Tensor:
    """Random visiting orders from ``generator``; see :meth:`TaskOrders.draw`."""
    # float32 keys whatever torch's default dtype: the orders depend on the seed alone.
    keys = torch.rand(n_tasks, n_tasks, generator=generator, device=device, dtype=torch.float32)
    if include_self:
        return keys.argsort(dim=1)
    keys.fill_diagonal_(2.0)  # sorts each task itself last, then drops it
    return keys.argsort(dim=1)[:, :-1]


class HostSolvedGramAggregator(GramianWeightedAggregator):
    """A Gram-based method whose weights come from a numpy/scipy solve of the present tasks'
    ``[n, n]`` Gram matrix (:func:`solve_on_host`); subclasses implement ``_solve``."""

    def gramian_weights(
        self, gram: Tensor, losses: Tensor, mask: Tensor, *, grads_dtype: torch.dtype
    ) -> Tensor:
        return solve_on_host(gram, mask, self._solve, like=gram)

    def _solve(self, gram: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """``[n]`` weights from the ``[n, n]`` Gram matrix of the present tasks."""
        raise NotImplementedError
