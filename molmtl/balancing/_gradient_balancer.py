"""The balancer behind every gradient method: per-task gradients in, one shared update out."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from molmtl.balancing._base import Aggregator, Balancer
from molmtl.balancing._gradients import PerTaskGradients, accumulate_grads, unflatten
from molmtl.balancing._numerics import all_finite, row_norms


class GradientBalancer(Balancer):
    """Balances the per-task gradients of the shared parameters with an :class:`Aggregator`.

    One step:

    1. optionally the log transform ``ℓ_t = log(L_t + eps)`` (DB-MTL's loss-scale balancing,
       usable with any aggregator as in the DB-MTL paper's ablations: ``"pcgrad+log"``);
    2. the ``[T, P]`` per-task gradients ``g_t = ∇_θ ℓ_t`` of the shared parameters θ (rows
       of unlabelled tasks zeroed);
    3. the shared update ``aggregator.aggregate(g, L, mask)`` is added to θ's ``.grad``;
    4. each task-specific parameter gets the plain gradient of ``Σ_t mask_t ℓ_t``, as in
       LibMTL (Lin & Zhang, 2023), where most gradient methods reweight only the shared
       gradients; an aggregator with ``weight_heads`` (Nash-MTL, ExcessMTL) gives them
       ``Σ_t h_t mask_t ∇ℓ_t`` with its ``head_weights()`` ``h`` instead.

    Args:
        shared, task_specific, n_tasks: see :class:`Balancer`.
        aggregator: the aggregation step.
        log_transform: apply the log transform first.
        eps: the ε of the log transform (only with ``log_transform``).
        backend: how per-task gradients are computed: ``"auto"`` (default; the faster one for
            the device), ``"sequential"`` or ``"batched"``; see :mod:`molmtl.balancing._gradients`.
        distributed: data-parallel training (``specs/dbmtl.md``'s extension): every rank calls
            :meth:`backward` with the losses of its own batch, and the update equals
            single-process training on the union of the ranks' batches (ranks with equal
            labelled counts per task, as with equal batch sizes). The loss values are reduced
            first (mean over the ranks where a task is labelled), then the per-task gradients,
            before the aggregator (DB-MTL's smoothing) sees them. Needs an initialised
            ``torch.distributed``; do not wrap the model in ``DistributedDataParallel``
            (gradients are reduced here, not by its hooks), and start every rank from the same
            parameters.
        process_group: the ``torch.distributed`` group to reduce over (None: the default group).
    """

    def __init__(
        self,
        shared: Iterable[torch.nn.Parameter],
        task_specific: Iterable[torch.nn.Parameter] | None = None,
        *,
        n_tasks: int,
        aggregator: Aggregator,
        log_transform: bool = False,
        eps: float = 1e-8,
        backend: str = "auto",
        distributed: bool = False,
        process_group: Any = None,
    ) -> None:
        super().__init__(shared, task_specific, n_tasks=n_tasks)
        if not isinstance(aggregator, Aggregator):
            raise TypeError(f"aggregator must be an Aggregator, got {type(aggregator).__name__}")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.aggregator = aggregator
        self.log_transform = log_transform
        self.eps = eps
        self.gradients = PerTaskGradients(backend)
        if distributed and not torch.distributed.is_initialized():
            raise ValueError(
                "distributed=True needs torch.distributed to be initialised "
                "(torch.distributed.init_process_group) before the balancer is built"
            )
        self.distributed = distributed
        self.process_group = process_group

    @property
    def requires_nonnegative_losses(self) -> bool:
        return self.log_transform or self.aggregator.requires_nonnegative_losses

    def _backward(self, losses: Tensor, mask: Tensor, bad: Tensor | None) -> dict[str, Tensor]:
        if self.distributed:
            task_losses, losses, mask = self._rank_surrogate(losses, mask)
        else:
            task_losses = torch.log(losses + self.eps) if self.log_transform else losses
            # Masking the (finite) losses zeroes the gradient rows of unlabelled tasks for free.
            task_losses = task_losses * mask
        weight_heads = self.aggregator.weight_heads
        shared_grads, task_grads = self.gradients(
            task_losses, self.shared_params, self.task_params, split_task_specific=weight_heads
        )
        if self.distributed:
            for grads in [shared_grads, *task_grads]:
                torch.distributed.all_reduce(grads, group=self.process_group)
        # Overflow-free norms: NaN or inf exactly for the rows that hold a NaN or inf.
        grad_norms = row_norms(shared_grads)
        bad = self._gradients_bad(losses, grad_norms, task_grads, bad)
        if bad is not None:
            # A bad step's NaN rows must not reach the aggregator's state.
            mask = mask & ~bad
            shared_grads = torch.where(mask[:, None], shared_grads, 0.0)
        # bfloat16 / float16 gradients are aggregated in float32 (a copy), written back rounded.
        work_grads = shared_grads.to(self.state_dtype)
        observed_losses = torch.where(mask, losses.detach(), 1.0).to(self.state_dtype)
        update, weights = self.aggregator.aggregate(work_grads, observed_losses, mask)
        self._check_update(update, weights, work_grads)
        if update.untyped_storage().data_ptr() == shared_grads.untyped_storage().data_ptr():
            # .grad must not alias the workspace that the next step overwrites.
            update = update.clone()
        update = update.to(shared_grads.dtype)
        accumulate_grads(self.shared_params, unflatten(update, self.shared_params), bad)
        if weight_heads:
            head_weights = self.aggregator.head_weights().to(shared_grads.dtype)
            task_grads = [torch.tensordot(head_weights, grads, dims=1) for grads in task_grads]
        accumulate_grads(self.task_params, task_grads, bad)
        if bad is not None:
            grad_norms = torch.where(mask, grad_norms, 0.0)
        return {"weights": weights.detach(), "grad_norms": grad_norms.to(self.state_dtype)}

    def _gradients_bad(
        self, losses: Tensor, grad_norms: Tensor, task_grads: list[Tensor], bad: Tensor | None
    ) -> Tensor | None:
        """Raise (CPU) or flag (accelerators) per-task gradients that are not finite.

        ``grad_norms`` ``[T]`` are the norms of the shared gradients. A task-specific gradient
        is ``[T, ...]`` per task with ``weight_heads``, else the sum over the tasks (then a
        non-finite one is blamed on every task).
        """
        finite_rows = torch.isfinite(grad_norms)
        if self.aggregator.weight_heads:
            for grads in task_grads:
                finite_rows = finite_rows & torch.isfinite(grads).flatten(1).all(dim=1)
        elif task_grads:
            finite_rows = finite_rows & all_finite(task_grads)
        flag = self._monitor.gradient_flag(losses, finite_rows)
        return flag if bad is None else bad | flag

    def _check_update(self, update: Tensor, weights: Tensor, grads: Tensor) -> None:
        """Raise if the aggregator turned finite gradients into a non-finite update (CPU only:
        elsewhere it would cost a host sync every step)."""
        # A weight may saturate at ±inf where the true one exceeds the dtype (a gradient 1e40
        # times shorter than another); the update is formed without it and must be finite.
        if update.device.type != "cpu" or (
            torch.isfinite(update).all() and not weights.isnan().any()
        ):
            return
        raise RuntimeError(
            f"{self.name}: the method produced a non-finite update from finite gradients "
            f"(weights {weights.tolist()}, gradient norms {row_norms(grads).tolist()}): the "
            f"update exceeds the range of {grads.dtype} (rescale the losses) or the method "
            "failed numerically; nothing was written"
        )

    def _rank_surrogate(self, losses: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """This rank's share of the global objective, and the global losses and mask.

        Returns ``[T]`` surrogate losses whose per-task gradients, summed over the ranks, are
        the gradients of ``log(L̄_t + eps)`` (or of ``L̄_t``), where ``L̄_t`` is the mean of
        task t's loss over the ranks that label it; and ``L̄`` ``[T]`` and its mask ``[T]``.
        """
        stats = torch.stack([torch.where(mask, losses.detach(), 0.0), mask.to(losses.dtype)])
        torch.distributed.all_reduce(stats, group=self.process_group)  # loss values first
        loss_sums, label_counts = stats
        ranks_labelled = label_counts.clamp(min=1)
        global_losses = loss_sums / ranks_labelled
        # d log(L̄ + eps) = dL̄ / (L̄ + eps), and dL̄ = Σ_ranks dL_rank / ranks_labelled.
        scale = ranks_labelled * (global_losses + self.eps if self.log_transform else 1.0)
        return losses * mask / scale, global_losses, label_counts > 0

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "aggregator": self.aggregator.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = set(state) - {"aggregator"}
        if unknown:
            raise ValueError(
                f"{self.name}: unknown state keys {sorted(unknown)}; expected ['aggregator']"
            )
        self.aggregator.load_state_dict(state.get("aggregator", {}))
