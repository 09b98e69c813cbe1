"""One optimization step and one epoch, on the device, with no host sync per step."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from molmtl import _device
from molmtl.training.config import ConfigError
from molmtl.training.metrics import masked_mse

if TYPE_CHECKING:
    from molmtl.balancing import Balancer
    from molmtl.graphs import GraphBatch, PackedGraphs
    from molmtl.training._distributed import DataParallel


@dataclass
class EpochMeans:
    """Per-task means of one epoch, ``[T]`` each (on the device until :meth:`cpu`)."""

    loss: Tensor  # mean training loss over the steps where the task was labelled
    weight: Tensor  # mean task weight the balancer applied
    grad_norm: Tensor  # mean norm of the task's shared gradient (NaN if not formed)
    labelled_steps: Tensor  # steps where the task had labels

    def stacked(self) -> Tensor:
        """``[4, T]``, for a single device-to-host copy together with other results."""
        return torch.stack([self.loss, self.weight, self.grad_norm, self.labelled_steps])

    @classmethod
    def unstack(cls, stacked: Tensor) -> EpochMeans:
        return cls(*stacked)


@dataclass
class EpochSums:
    """Running sums of one epoch, on the device. ``[T]`` each."""

    loss: Tensor
    labelled_steps: Tensor
    weights: Tensor
    grad_norms: Tensor
    steps: int = 0

    @classmethod
    def zeros(cls, n_tasks: int, device: torch.device) -> EpochSums:
        return cls(*(torch.zeros(n_tasks, device=device) for _ in range(4)))

    def add(self, losses: Tensor, mask: Tensor, diagnostics: dict[str, Tensor]) -> None:
        self.loss += losses.detach() * mask
        self.labelled_steps += mask
        self.weights += diagnostics["weights"].detach().float()
        self.grad_norms += diagnostics["grad_norms"].detach().float()
        self.steps += 1

    def means(self) -> EpochMeans:
        steps = max(self.steps, 1)
        return EpochMeans(
            loss=self.loss / self.labelled_steps,
            weight=self.weights / steps,
            grad_norm=self.grad_norms / steps,
            labelled_steps=self.labelled_steps,
        )


def train_step(
    forward: Callable[[GraphBatch], Tensor],
    balancer: Balancer,
    optimizer: torch.optim.Optimizer,
    batch: GraphBatch,
    targets: Tensor,
    autocast: AbstractContextManager | None = None,
    data_parallel: DataParallel | None = None,
) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """One optimization step; nothing is read back to the host.

    Args:
        forward: the model (possibly compiled): batch → ``[B, T]`` standardized predictions.
        balancer: turns the per-task losses into gradients.
        targets: ``[B, T]`` standardized labels, NaN = missing.
        autocast: e.g. a bf16 ``torch.autocast`` context for the forward pass, or None.
        data_parallel: the ranks when ``batch`` is this rank's shard of a global batch; the
            step then equals one process on the global batch.

    Returns:
        ``losses [T]`` (detached), ``mask [T]`` (tasks labelled in the batch; with
        ``data_parallel``, in the global batch) and the balancer's diagnostics.
    """
    optimizer.zero_grad(set_to_none=True)
    with autocast or nullcontext():
        prediction = forward(batch)
    if data_parallel is None:
        losses, mask = masked_mse(prediction.float(), targets)
        diagnostics = balancer.backward(losses, mask)
    else:
        losses, mask, diagnostics = data_parallel.backward(balancer, prediction.float(), targets)
    optimizer.step()
    return losses.detach(), mask, diagnostics


def train_epoch(
    forward: Callable[[GraphBatch], Tensor],
    balancer: Balancer,
    optimizer: torch.optim.Optimizer,
    graphs: PackedGraphs,
    targets: Tensor,
    order: Tensor,
    *,
    batch_size: int,
    autocast: AbstractContextManager | None = None,
    data_parallel: DataParallel | None = None,
) -> EpochSums:
    """One pass over the molecules ``order`` in mini-batches built on the device.

    Args:
        graphs: the dataset's graphs, already on the device.
        targets: ``[G, T]`` standardized labels on the device (NaN = missing).
        order: ``[N]`` CPU long tensor, the (shuffled) training molecules, the same on every rank.
        batch_size: molecules per step (with ``data_parallel``, over all ranks together).
        data_parallel: the ranks, each training on its shard of every batch.

    Returns:
        The epoch's running sums (of the global batches), still on the device.
    """
    sums = EpochSums.zeros(targets.shape[1], targets.device)
    if data_parallel is None:
        batches = graphs.batches(order, batch_size)
    else:
        batches = data_parallel.batches(graphs, order, batch_size)
    for device_batch, batch in batches:
        losses, mask, diagnostics = train_step(
            forward, balancer, optimizer, batch, targets[device_batch], autocast, data_parallel
        )
        sums.add(losses, mask, diagnostics)
    return sums


def compile_model(model: torch.nn.Module) -> Callable[[GraphBatch], Tensor]:
    """``torch.compile`` with dynamic shapes (batches differ in size)."""
    import torch._functorch.config

    # gradient balancers differentiate the losses several times (retain_graph=True), which
    # compiled backward graphs with donated buffers refuse
    torch._functorch.config.donated_buffer = False
    return torch.compile(model, dynamic=True)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; a CPU or existing CUDA device by name."""
    try:
        return _device.resolve_device(name, use="training")
    except ValueError as error:
        raise ConfigError(f"device: {error}") from error
