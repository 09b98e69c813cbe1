"""IMTL-G: the combination of task gradients with equal projections on every task direction."""

from __future__ import annotations

import torch
from torch import Tensor

from molmtl.balancing._methods._gram import GramianWeightedAggregator


class IMTL(GramianWeightedAggregator):
    """Impartial multi-task learning, gradient part (IMTL-G).

    Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021.

    Finds weights ``a`` with ``sum_t a_t = 1`` such that ``g = sum_t a_t g_t`` has the same
    projection on every unit task gradient ``u_t = g_t / |g_t|``. Writing ``g = sum_t b_t u_t``
    turns this into ``C b = 1`` with ``C`` the matrix of gradient cosines, so
    ``a = N^-1 C^-1 1`` normalised to sum 1 (``N`` the gradient norms), which is the paper's
    closed form without its reference task (so it is exactly permutation equivariant).

    Solver: closed form, tensor ops only (a ``[T, T]`` float64 solve on the device, no host
    sync). The weights are invariant to a common rescaling of the gradients, and the update's
    direction to rescaling any single task's gradient.

    Degenerate inputs: a ridge of 1e-10 on ``C`` keeps the solve finite for linearly dependent
    gradients (identical gradients share their weight equally; exactly opposite ones give a zero
    update); a task with an exactly zero gradient has no direction and gets weight 0.

    The paper's full IMTL also rescales the losses with learnable scales (IMTL-L,
    ``exp(s_t) L_t - s_t``); that loss part needs trainable parameters and belongs to the
    balancer, not to this aggregation step.
    """

    #: ridge added to the cosine matrix (unit diagonal), far below float32 resolution.
    ridge: float = 1e-10

    def gramian_weights(
        self, gram: Tensor, losses: Tensor, mask: Tensor, *, grads_dtype: torch.dtype
    ) -> Tensor:
        norms = gram.diagonal().sqrt()
        usable = mask & (norms > 0)
        inverse_norms = torch.where(usable, 1.0 / torch.where(usable, norms, 1.0), 0.0)
        cosines = gram * inverse_norms[:, None] * inverse_norms[None, :]
        # Unusable tasks get an identity row and a zero right-hand side: their b_t is 0.
        cosines = cosines + torch.diag(torch.where(usable, self.ridge, 1.0))
        unit_coefficients, _ = torch.linalg.solve_ex(cosines, usable.to(gram.dtype))
        raw = unit_coefficients * inverse_norms
        total = raw.sum()
        return raw / torch.where(total != 0, total, 1.0)
