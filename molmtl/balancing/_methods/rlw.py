"""Random loss weighting (``rlw``): fresh random weights every step."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from molmtl.balancing._base import Parameters
from molmtl.balancing._loss_weighting import LossWeighting, masked_softmax


class RandomLossWeighting(LossWeighting):
    """Lin et al., "Reasonable Effectiveness of Random Weighting: A Litmus Test for Multi-Task
    Learning", TMLR 2022.

    Each step the weights are ``softmax(z)`` over the labelled tasks with ``z ~ N(0, I)``
    (they sum to 1, as in LibMTL). The random numbers come from the balancer's own generator
    on the parameters' device, whose state is in ``state_dict`` so a resumed run draws the
    same weights.

    Args:
        seed: seed of the generator (default: drawn from torch's global generator, so
            ``torch.manual_seed`` makes runs reproducible).
    """

    def __init__(
        self,
        shared: Parameters,
        task_specific: Parameters | None = None,
        *,
        n_tasks: int,
        seed: int | None = None,
    ) -> None:
        super().__init__(shared, task_specific, n_tasks=n_tasks)
        if seed is None:
            seed = int(torch.randint(2**62, ()))
        self.generator_ = torch.Generator(device=self.device)
        self.generator_.manual_seed(seed)

    def loss_weights(self, losses: Tensor, mask: Tensor) -> Tensor:
        logits = torch.randn(
            losses.shape, generator=self.generator_, device=losses.device, dtype=losses.dtype
        )
        return masked_softmax(logits, mask)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "generator_": self.generator_.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"generator_"}:
            raise ValueError(
                f"{self.name} state must have keys ['generator_'], got {sorted(state)}"
            )
        self.generator_.set_state(state["generator_"])
