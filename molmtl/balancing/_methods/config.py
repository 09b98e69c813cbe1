"""ConFIG: the direction with equal projections on every unit task gradient, at the summed length."""

from __future__ import annotations

import torch
from torch import Tensor

from molmtl.balancing._methods._gram import GramianWeightedAggregator


class ConFIG(GramianWeightedAggregator):
    """Conflict-free inverse gradients.

    Liu et al., "ConFIG: Towards Conflict-free Training of Physics Informed Neural Networks",
    ICLR 2025 (their Equation 2, with the official code's defaults: equal weights and the
    projection length).

    With the unit gradients ``u_i = g_i / |g_i|`` as the rows of ``U``, the direction is
    ``x = U^+ 1`` (the minimum-norm ``x`` with ``u_i . x = 1`` for every task, in the least-squares
    sense when no such ``x`` exists), and the update is ``(sum_i g_i . x̂) x̂`` with ``x̂ = x / |x|``.
    Every task gets the same cosine with the update, positive when the unit gradients are
    linearly independent. (The direction is that of :class:`IMTL`'s update; the length differs.)

    Through the Gram matrix: ``x = sum_i (a_i / |g_i|) g_i`` with ``a = C^+ 1`` for the cosine
    matrix ``C``, so ``|x|^2 = a^T C a`` and ``g_i . x = |g_i| (C a)_i``. The pseudo-inverse comes
    from a ``[T, T]`` float64 eigendecomposition on the gradients' device (tensor ops, no
    explicit host sync); eigenvalues up to ``lambda_max * T * eps`` (eps of the gradients' dtype)
    count as zero, as the rank of ``U`` in ``torch.linalg.pinv`` (the official code's
    ``torch.linalg.lstsq`` and torchjd's ``pinv`` give the same minimum-norm solution). The
    weights are invariant to a common rescaling of the gradients.

    Degenerate inputs: a zero gradient has no direction and gets weight 0; when the
    least-squares direction vanishes (e.g. exactly opposite gradients) the update is 0. The
    paper's momentum variant (M-ConFIG) is not included.
    """

    def gramian_weights(
        self, gram: Tensor, losses: Tensor, mask: Tensor, *, grads_dtype: torch.dtype
    ) -> Tensor:
        norms = gram.diagonal().clamp(min=0.0).sqrt()
        usable = mask & (norms > 0)
        inverse_norms = torch.where(usable, 1.0 / torch.where(usable, norms, 1.0), 0.0)
        cosines = gram * inverse_norms[:, None] * inverse_norms[None, :]
        eigenvalues, eigenvectors = torch.linalg.eigh(cosines)
        kept = eigenvalues > eigenvalues.amax() * gram.shape[0] * torch.finfo(grads_dtype).eps
        inverse_eigenvalues = torch.where(kept, 1.0 / torch.where(kept, eigenvalues, 1.0), 0.0)
        ones = usable.to(gram.dtype)
        unit_coefficients = eigenvectors @ (inverse_eigenvalues * (eigenvectors.T @ ones)) * ones
        projections = cosines @ unit_coefficients  # u_i . x
        squared_length = unit_coefficients @ projections  # |x|^2
        summed_length = (norms * ones) @ projections  # sum_i g_i . x
        positive = squared_length > 0
        scale = torch.where(
            positive, summed_length / torch.where(positive, squared_length, 1.0), 0.0
        )
        return scale * unit_coefficients * inverse_norms
