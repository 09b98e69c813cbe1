"""Scale-invariant loss (``si``): the sum of the log losses."""

from __future__ import annotations

from torch import Tensor

from molmtl.balancing._loss_weighting import LogLossWeighting


class ScaleInvariant(LogLossWeighting):
    """The update is ``∇ Σ_t log(L_t + eps)``, i.e. weights ``1 / (L_t + eps)``.

    The "SI" baseline of Lin et al., "Dual-Balancing for Multi-Task Learning",
    arXiv:2308.12029 (2023), DB-MTL's loss-scale balancing without its gradient balancing.
    Invariant to rescaling any task loss by a constant.

    Args:
        eps: ε inside the logarithm (1e-8, as in DB-MTL).
    """

    def loss_weights(self, losses: Tensor, mask: Tensor) -> Tensor:
        return 1.0 / (losses + self.eps)
