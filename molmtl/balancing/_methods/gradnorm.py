"""GradNorm: learnable task weights that equalize the tasks' training rates (``gradnorm``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from molmtl.balancing._base import Aggregator
from molmtl.balancing._numerics import row_norms
from molmtl.balancing._optim import step_present


class GradNorm(Aggregator):
    """Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep
    Multitask Networks", ICML 2018.

    Task weights ``w = T · softmax(z)`` (the parametrization of LibMTL, which keeps
    ``Σ w = T`` and ``w > 0`` as the paper's renormalization intends) weight the per-task
    shared gradients. After each step ``z`` takes one step of its own Adam optimizer on the
    GradNorm loss over the labelled tasks::

        G_t = w_t ‖g_t‖,   r_t = (L_t / L_t(0)) / mean_j (L_j / L_j(0))
        L_grad = Σ_t |G_t − stopgrad(mean_j G_j · r_t^α)|

    ``L_t(0)`` is task t's loss at the first step where it was labelled. A task without labels
    in the batch keeps its logit ``z_t`` and Adam moments (its weight still shifts with the
    others' logits, as the weights are normalised to sum to T). As in LibMTL, the
    gradients are those of all shared parameters (not only the last shared layer). The weights
    are learned here, so the user's optimizer needs nothing special; their Adam state is in
    ``state_dict``. :meth:`aggregate` is the training step; :meth:`weights` gives the weights it
    would apply, leaving ``z`` and its optimizer as they are.

    Args:
        alpha: α, the restoring-force strength (1.5, the paper's value for its regression
            benchmarks).
        lr: learning rate of the internal Adam optimizer of ``z`` (1e-3).
    """

    needs_losses = True
    requires_nonnegative_losses = True

    def __init__(self, alpha: float = 1.5, lr: float = 1e-3) -> None:
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        self.alpha = alpha
        self.lr = lr
        self.logits_: Tensor | None = None
        self.initial_losses_: Tensor | None = None
        self.optimizer_: torch.optim.Adam | None = None

    def _init_state(self, n_tasks: int, device: torch.device, dtype: torch.dtype) -> None:
        self.logits_ = torch.zeros(n_tasks, device=device, dtype=dtype, requires_grad=True)
        # NaN marks "not seen labelled yet".
        self.initial_losses_ = torch.full((n_tasks,), float("nan"), device=device, dtype=dtype)
        self.optimizer_ = torch.optim.Adam([self.logits_], lr=self.lr)

    def weights(self, grads: Tensor, losses: Tensor, mask: Tensor) -> Tensor:
        """The ``[T]`` weights of this step: those before its update of ``z``."""
        n_tasks = grads.shape[0]
        logits = self.logits_
        if logits is None:
            logits = torch.zeros(n_tasks, device=grads.device, dtype=grads.dtype)
        return torch.where(mask, _task_weights(logits.detach()), 0.0)

    def aggregate(self, grads: Tensor, losses: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """The training step: the ``[P]`` update and ``[T]`` weights, then one Adam step of ``z``."""
        if self.logits_ is None:
            self._init_state(grads.shape[0], grads.device, grads.dtype)
        self.initial_losses_ = torch.where(
            mask & torch.isnan(self.initial_losses_), losses, self.initial_losses_
        )
        with torch.enable_grad():
            task_weights = _task_weights(self.logits_)
            gradnorm_loss = self._gradnorm_loss(task_weights, grads, losses, mask)
            (logits_grad,) = torch.autograd.grad(gradnorm_loss, self.logits_)
        self.logits_.grad = logits_grad
        step_present(self.optimizer_, self.logits_, mask)
        weights = torch.where(mask, task_weights.detach(), 0.0)
        return weights @ grads, weights

    def _gradnorm_loss(
        self, task_weights: Tensor, grads: Tensor, losses: Tensor, mask: Tensor
    ) -> Tensor:
        """The 0-d GradNorm loss ``L_grad`` of the ``[T]`` weights for ``grads`` ``[T, P]``."""
        # w_t > 0, so ‖w_t g_t‖ = w_t ‖g_t‖ without forming the [T, P] product.
        weighted_norms = task_weights * row_norms(grads)
        n_labelled = mask.sum().clamp(min=1)
        mean_norm = torch.where(mask, weighted_norms, 0.0).sum() / n_labelled
        # The 1e-8 keeps a task whose first loss was exactly 0 finite.
        loss_ratios = torch.where(mask, (losses + 1e-8) / (self.initial_losses_ + 1e-8), 0.0)
        relative_rates = loss_ratios / (loss_ratios.sum() / n_labelled)
        targets = (mean_norm * relative_rates**self.alpha).detach()
        return torch.where(mask, (weighted_norms - targets).abs(), 0.0).sum()

    def state_dict(self) -> dict[str, Any]:
        if self.logits_ is None:
            return {}
        return {
            "logits_": self.logits_.detach().clone(),
            "initial_losses_": self.initial_losses_.clone(),
            "optimizer_": self.optimizer_.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            self.logits_ = self.initial_losses_ = self.optimizer_ = None
            return
        expected = {"logits_", "initial_losses_", "optimizer_"}
        if set(state) != expected:
            raise ValueError(
                f"GradNorm state must have keys {sorted(expected)}, got {sorted(state)}"
            )
        logits = state["logits_"]
        self._init_state(logits.shape[0], logits.device, logits.dtype)
        with torch.no_grad():
            self.logits_.copy_(logits)
        self.initial_losses_ = state["initial_losses_"].clone()
        self.optimizer_.load_state_dict(state["optimizer_"])


def _task_weights(logits: Tensor) -> Tensor:
    """``[T]`` weights ``T · softmax(z)`` of the ``[T]`` logits ``z``."""
    return logits.shape[0] * torch.softmax(logits, dim=0)
