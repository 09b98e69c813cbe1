"""Aligned-MTL: make the task gradients orthogonal with equal norms, then sum them."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from molmtl.balancing._methods._gram import GramianWeightedAggregator


def _smallest(eigenvalues: Tensor, kept: Tensor) -> Tensor:
    return torch.where(kept, eigenvalues, torch.inf).amin()


def _median(eigenvalues: Tensor, kept: Tensor) -> Tensor:
    return torch.where(kept, eigenvalues, torch.nan).nanmedian()


def _mean(eigenvalues: Tensor, kept: Tensor) -> Tensor:
    return torch.where(kept, eigenvalues, 0.0).sum() / kept.sum().clamp(min=1)


#: the official code's ``scale_mode``: which eigenvalue of the Gram matrix sets the new scale.
_SCALE_MODES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "min": _smallest,
    "median": _median,
    "rmse": _mean,
}


class AlignedMTL(GramianWeightedAggregator):
    """Aligned-MTL: align the principal components of the gradient matrix.

    Senushkin et al., "Independent Component Alignment for Multi-Task Learning", CVPR 2023.

    With the Gram matrix ``G = grads @ grads.T = V diag(lambda) V^T`` (rank ``r``), the aligned
    gradients are ``B @ grads`` with ``B = sqrt(lambda_min) V_r diag(lambda_r)^-1/2 V_r^T``: their
    non-zero singular values all equal the smallest one of ``grads`` (condition number 1), and the
    update is their sum, i.e. weights ``B @ 1``.

    Rank: the official code counts eigenvalues of ``G`` up to ``lambda_max * T * eps`` as zero,
    which also drops the direction of any gradient about ``1 / sqrt(T eps)`` times shorter than
    the largest (1/1700 in float32, T = 3) though it is not linearly dependent on the others. Here
    the rank is that of the cosine matrix ``G_ij / (|g_i| |g_j|)`` with the same relative cut
    (``eps`` of ``grads``' dtype), which only linearly dependent gradients reduce; the ``r``
    largest eigenvalues of ``G`` are kept. For gradients of equal norms both cuts are the same.

    Solver: a ``[T, T]`` float64 ``torch.linalg.eigh`` on the gradients' device, no explicit host
    sync (on CUDA, eigh checks its convergence flag on the host internally), of ``G`` with the
    tasks ordered by decreasing gradient norm: for such graded matrices the small eigenpairs come
    out accurate relative to their own size (unsorted, a norm spread of 10^6 cost 1e-4 of the
    update). The weights are invariant to a common rescaling of the gradients. All-zero
    gradients give zero weights.

    Args:
        scale_mode: ``"min"`` (default, the official code's default: scale by the smallest
            singular value), ``"median"`` or ``"rmse"``.
    """

    def __init__(self, *, scale_mode: str = "min") -> None:
        if scale_mode not in _SCALE_MODES:
            raise ValueError(
                f"AlignedMTL scale_mode must be one of {sorted(_SCALE_MODES)}, got {scale_mode!r}"
            )
        self.scale_mode = scale_mode

    def gramian_weights(
        self, gram: Tensor, losses: Tensor, mask: Tensor, *, grads_dtype: torch.dtype
    ) -> Tensor:
        norms = gram.diagonal().clamp(min=0.0).sqrt()
        order = norms.argsort(descending=True)
        eigenvalues, eigenvectors = torch.linalg.eigh(gram[order][:, order])
        rank = _rank(gram, norms, grads_dtype)
        # eigh sorts ascending: keep the `rank` largest (and positive) eigenvalues.
        positions = torch.arange(gram.shape[0], device=gram.device)
        kept = (positions >= gram.shape[0] - rank) & (eigenvalues > 0)
        target_scale = _SCALE_MODES[self.scale_mode](eigenvalues, kept).sqrt()
        # where() keeps the dropped directions at exactly 0 (no 0 * inf).
        safe = torch.where(kept, eigenvalues, 1.0)
        rescaling = torch.where(kept, target_scale / safe.sqrt(), 0.0)
        balance = (eigenvectors * rescaling) @ eigenvectors.T
        weights = torch.empty_like(norms).scatter_(0, order, balance.sum(dim=1))
        return weights * mask


def _rank(gram: Tensor, norms: Tensor, grads_dtype: torch.dtype) -> Tensor:
    """Numerical rank (0-d long) of the ``[T, T]`` Gram matrix: that of its cosine matrix, whose
    eigenvalues up to ``max * T * eps`` count as zero (zero gradients have a zero row)."""
    inverse_norms = torch.where(norms > 0, 1.0 / torch.where(norms > 0, norms, 1.0), 0.0)
    cosines = gram * inverse_norms[:, None] * inverse_norms[None, :]
    spectrum = torch.linalg.eigvalsh(cosines)
    tolerance = spectrum.amax() * gram.shape[0] * torch.finfo(grads_dtype).eps
    return (spectrum > tolerance).sum()
