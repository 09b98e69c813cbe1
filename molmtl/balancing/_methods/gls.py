"""Geometric loss strategy (``gls``): the geometric mean of the task losses."""

from __future__ import annotations

import torch
from torch import Tensor

from molmtl.balancing._loss_weighting import LogLossWeighting


class GeometricLoss(LogLossWeighting):
    """Chennupati et al., "MultiNet++: Multi-Stream Feature Aggregation and Geometric Loss
    Strategy for Multi-Task Learning", CVPR Workshops 2019.

    The update is ``∇ (Π_t L_t)^(1/n)`` over the n labelled tasks, i.e. weights
    ``G / (n L_t)`` with G the geometric mean. Computed in the log domain with ``L_t + eps``
    so that a loss of exactly 0 stays finite.

    Args:
        eps: ε added to every loss (1e-8).
    """

    def loss_weights(self, losses: Tensor, mask: Tensor) -> Tensor:
        shifted = losses + self.eps
        n_labelled = mask.sum().clamp(min=1)
        geometric_mean = torch.exp(torch.where(mask, shifted.log(), 0.0).sum() / n_labelled)
        return geometric_mean / (n_labelled * shifted)
