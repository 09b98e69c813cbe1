"""Equal weighting (``ew``): the plain sum of the task losses."""

from __future__ import annotations

import torch
from torch import Tensor

from molmtl.balancing._loss_weighting import LossWeighting


class EqualWeighting(LossWeighting):
    """Every labelled task gets weight 1: the update is ``∇ Σ_t L_t``.

    The baseline of every multi-task balancing paper (e.g. Lin et al., "Dual-Balancing for
    Multi-Task Learning", arXiv:2308.12029, 2023, Table 1 "EW").
    """

    def loss_weights(self, losses: Tensor, mask: Tensor) -> Tensor:
        return torch.ones_like(losses)
