"""Scale-invariant loss (``si``): the sum of the log losses."""

from __future__ import annotations

from torch import Tensor

from molmtl.balancing._base import Parameters
from molmtl.balancing._loss_weighting import LossWeighting


class ScaleInvariant(LossWeighting):
    """The update is ``∇ Σ_t log(L_t + eps)``, i.e. weights ``1 / (L_t + eps)``.

    The "SI" baseline of Lin et al., "Dual-Balancing for Multi-Task Learning",
    arXiv:2308.12029 (2023), DB-MTL's loss-scale balancing without its gradient balancing.
    Invariant to rescaling any task loss by a constant.

    Args:
        eps: ε inside the logarithm (1e-8, as in DB-MTL).
    """

    requires_nonnegative_losses = True

    def __init__(
        self,
        shared: Parameters,
        task_specific: Parameters | None = None,
        *,
        n_tasks: int,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(shared, task_specific, n_tasks=n_tasks)
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.eps = eps

    def loss_weights(self, losses: Tensor, mask: Tensor) -> Tensor:
        return 1.0 / (losses + self.eps)
