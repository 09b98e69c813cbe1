"""DB-MTL (``dbmtl``) and its gradient-magnitude balancing (``gradmax``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from molmtl.balancing._base import Aggregator, Parameters
from molmtl.balancing._gradient_balancer import GradientBalancer
from molmtl.balancing._numerics import row_norms


class GradMax(Aggregator):
    """Smoothed per-task gradients, each rescaled to the largest smoothed norm, then summed.

    The gradient half of DB-MTL: Lin et al., "Dual-Balancing for Multi-Task Learning",
    arXiv:2308.12029 (2023), following the authors' LibMTL implementation, as specified in
    ``specs/dbmtl.md``. At step ``k`` (counting steps where any task is labelled)::

        β_k = β / k^σ
        ĝ_t ← β_k ĝ_t + (1 − β_k) g_t          (buffers start at 0, no bias correction)
        α_t = max_j ‖ĝ_j‖ / (‖ĝ_t‖ + 1e-8)
        update = Σ_t α_t ĝ_t

    Missing labels (molmtl's extension): a task with ``mask`` False keeps its buffer, and is
    left out of the max and of the sum; a step where no task is labelled changes nothing
    (not even ``k``).

    :meth:`aggregate` is the training step (it updates ĝ and k); :meth:`weights` gives the α_t
    that step would apply, leaving the state as it is.

    Args:
        beta: β, the smoothing factor (0.9).
        beta_sigma: σ, the decay exponent of β over steps (0.0: constant β).

    State (``state_dict``): ``grad_buffer_`` ``[T, P]`` (the ĝ_t) and ``step_`` (k).
    """

    def __init__(self, beta: float = 0.9, beta_sigma: float = 0.0) -> None:
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        if beta_sigma < 0.0:
            raise ValueError(f"beta_sigma must be >= 0, got {beta_sigma}")
        self.beta = beta
        self.beta_sigma = beta_sigma
        self.grad_buffer_: Tensor | None = None
        self.step_: Tensor | None = None

    def aggregate(self, grads: Tensor, losses: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        self.grad_buffer_, self.step_ = self._state_for(grads)
        self.step_ = self.step_ + mask.any()
        # ĝ ← ĝ + (1 − β_k)(g − ĝ) in place (no [T, P] allocation); weight 0 leaves an
        # unlabelled task's buffer bit-for-bit unchanged.
        self.grad_buffer_.lerp_(grads, self._row_weights(mask, self.step_, grads.dtype))
        weights = _balanced(self.grad_buffer_, mask)
        return weights @ self.grad_buffer_, weights

    def weights(self, grads: Tensor, losses: Tensor, mask: Tensor) -> Tensor:
        """The ``[T]`` α_t of this step (applied to the smoothed gradients, not to ``grads``)."""
        buffer, step = self._state_for(grads)
        step = step + mask.any()
        smoothed = buffer.lerp(grads, self._row_weights(mask, step, grads.dtype))
        return _balanced(smoothed, mask)

    def _state_for(self, grads: Tensor) -> tuple[Tensor, Tensor]:
        """The ``[T, P]`` buffers and the 0-d step counter on ``grads``' device (zeros at first)."""
        if self.grad_buffer_ is None or self.step_ is None:
            return torch.zeros_like(grads), torch.zeros((), dtype=torch.long, device=grads.device)
        if self.grad_buffer_.shape != grads.shape:
            raise ValueError(
                f"GradMax state holds gradients of shape {list(self.grad_buffer_.shape)} "
                f"but got {list(grads.shape)}; was it loaded from another model?"
            )
        # A loaded state may come from another device.
        return self.grad_buffer_.to(grads.device), self.step_.to(grads.device)

    def _row_weights(self, mask: Tensor, step: Tensor, dtype: torch.dtype) -> Tensor:
        """``[T, 1]`` EMA weights ``1 − β_k`` of the new gradients, 0 for unlabelled tasks."""
        beta_k = self.beta / step.clamp(min=1).to(dtype) ** self.beta_sigma
        return torch.where(mask, 1.0 - beta_k, 0.0)[:, None]

    def state_dict(self) -> dict[str, Any]:
        if self.grad_buffer_ is None or self.step_ is None:
            return {}
        return {"grad_buffer_": self.grad_buffer_.clone(), "step_": self.step_.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            self.grad_buffer_ = self.step_ = None
            return
        if set(state) != {"grad_buffer_", "step_"}:
            raise ValueError(
                f"GradMax state must have keys ['grad_buffer_', 'step_'], got {sorted(state)}"
            )
        self.grad_buffer_ = state["grad_buffer_"].clone()
        self.step_ = state["step_"].clone()


def _balanced(smoothed: Tensor, mask: Tensor) -> Tensor:
    """``[T]`` α_t = max_j ‖ĝ_j‖ / (‖ĝ_t‖ + 1e-8) over the labelled tasks of ``smoothed`` ``[T, P]``."""
    norms = row_norms(smoothed)  # bit for bit smoothed.norm(dim=1), without its overflow
    largest = torch.where(mask, norms, 0.0).max()
    return torch.where(mask, largest / (norms + 1e-8), 0.0)


class DBMTL(GradientBalancer):
    """DB-MTL: the log transform (loss-scale balancing), then :class:`GradMax`.

    Lin et al., "Dual-Balancing for Multi-Task Learning", arXiv:2308.12029 (2023), as specified
    in ``specs/dbmtl.md``: ``ℓ_t = log(L_t + eps)``; the heads get ``∇_φt ℓ_t``; the shared
    parameters get GradMax's update of the per-task gradients ``∇_θ ℓ_t``. The same balancer as
    ``molmtl.balancing.get("dbmtl", ...)``.

    Args:
        shared, task_specific, n_tasks: see :class:`Balancer`.
        beta, beta_sigma: see :class:`GradMax`.
        eps, backend, distributed, process_group: see :class:`GradientBalancer`.
    """

    def __init__(
        self,
        shared: Parameters,
        task_specific: Parameters | None = None,
        *,
        n_tasks: int,
        beta: float = 0.9,
        beta_sigma: float = 0.0,
        eps: float = 1e-8,
        backend: str = "auto",
        distributed: bool = False,
        process_group: Any = None,
    ) -> None:
        super().__init__(
            shared,
            task_specific,
            n_tasks=n_tasks,
            aggregator=GradMax(beta=beta, beta_sigma=beta_sigma),
            log_transform=True,
            eps=eps,
            backend=backend,
            distributed=distributed,
            process_group=process_group,
        )
