"""Data-parallel training over ``torch.distributed`` ranks, equal to one process on the global batch.

``torchrun --nproc-per-node N -m molmtl train ...`` starts N processes; :func:`join` turns the
environment torchrun sets into a :class:`DataParallel` (None for a single process, whose code
path stays untouched). Every rank holds the whole dataset and the same model, draws the same
seeded permutation, and trains on its contiguous shard of every global batch. Per step:

- the per-task masked MSE of the global batch is ``Σ_ranks squared-error sums / Σ_ranks label
  counts``: sums and counts are reduced, never means, so shards of unequal size or with
  different missing labels combine exactly;
- loss-weighting methods get the global loss values (so their weights and state agree on every
  rank) with this rank's share of the gradient, and the summed gradients are reduced in one
  flat bucket afterwards;
- gradient methods reduce their per-task gradients themselves (``distributed=True``); each
  rank passes its share rescaled so that the balancer's mean over the ranks labelling a task is
  the global loss.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

from molmtl.balancing import Balancer, GradientBalancer
from molmtl.training.metrics import masked_squared_error_sums

if TYPE_CHECKING:
    from molmtl.graphs import GraphBatch, PackedGraphs

#: seconds a collective may wait for the other ranks (rank 0 featurizes QM9 while they wait)
TIMEOUT_VARIABLE = "MOLMTL_DISTRIBUTED_TIMEOUT"
DEFAULT_TIMEOUT_S = 1800

Result = TypeVar("Result")


class RankFailedError(RuntimeError):
    """Another rank failed: this one stops too, naming it, instead of waiting for it."""


@dataclass
class DataParallel:
    """This process's place among the ranks, and the collectives the trainer needs.

    Args:
        rank, world_size: of the default process group (or of ``group``).
        group: the process group to reduce over (None: the default group).
        owns_group: whether :func:`join` initialised the group (then :meth:`close` destroys it).
    """

    rank: int
    world_size: int
    group: Any = None
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0, the only one that writes the run directory."""
        return self.rank == 0

    def shard(self, index: Tensor) -> Tensor:
        """This rank's contiguous part of ``index`` ``[N]``; the parts cover it exactly once."""
        n = len(index)
        return index[self.rank * n // self.world_size : (self.rank + 1) * n // self.world_size]

    def batches(
        self, graphs: PackedGraphs, order: Tensor, batch_size: int
    ) -> Iterator[tuple[Tensor, GraphBatch]]:
        """This rank's shard of every global batch of ``order`` (``[N]`` CPU), possibly empty."""
        shards = [self.shard(chunk) for chunk in order.split(batch_size)]
        return graphs.batches(torch.cat(shards), [len(shard) for shard in shards])

    def sum_(self, tensor: Tensor) -> Tensor:
        """Sum ``tensor`` over the ranks, in place, and return it."""
        dist.all_reduce(tensor, group=self.group)
        return tensor

    def backward(
        self, balancer: Balancer, prediction: Tensor, targets: Tensor
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Fill ``.grad`` with the gradient of the global batch, identically on every rank.

        Args:
            prediction: ``[B, T]`` this rank's standardized predictions (float32).
            targets: ``[B, T]`` their labels, NaN = missing.

        Returns:
            The global batch's ``losses [T]`` (detached), its ``mask [T]`` and the diagnostics.
        """
        error_sums, counts = masked_squared_error_sums(prediction, targets)
        labelled_here = counts > 0
        stats = torch.stack(
            [error_sums.detach(), counts.to(error_sums.dtype), labelled_here.to(error_sums.dtype)]
        )
        total_error, total_count, ranks_labelled = self.sum_(stats)
        count = total_count.clamp(min=1)
        losses, mask = total_error / count, total_count > 0
        share = error_sums / count  # summed over the ranks: the global batch's loss
        if isinstance(balancer, GradientBalancer):
            if not balancer.distributed:
                raise ValueError(
                    "data-parallel training needs the balancer built with distributed=True"
                )
            # the balancer takes the mean over the ranks that label a task
            diagnostics = balancer.backward(share * ranks_labelled.clamp(min=1), labelled_here)
        else:
            # value: the global loss, so weights and state agree; gradient: this rank's share
            diagnostics = balancer.backward(share + (losses - share).detach(), mask)
            self.reduce_gradients([*balancer.shared_params, *balancer.task_params])
        return losses, mask, diagnostics

    def reduce_gradients(self, params: list[torch.nn.Parameter]) -> None:
        """Sum the ``.grad`` of ``params`` over the ranks in one flat bucket (one collective)."""
        grads = [p.grad for p in params]
        if any(grad is None for grad in grads):
            raise ValueError("every parameter needs a .grad before the reduction (zeros if unused)")
        flat = self.sum_(torch.cat([grad.reshape(-1) for grad in grads]))
        for grad, reduced in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            grad.copy_(reduced.view_as(grad))

    def barrier(self) -> None:
        dist.barrier(group=self.group)

    def main_first(
        self, work: Callable[[], Result], others: Callable[[], Result] | None = None
    ) -> Result:
        """``work()`` on rank 0, then, once it succeeded, ``others()`` (or ``work()``) elsewhere.

        For what must happen once (featurizing into the cache, writing ``splits.json``): a
        failure on rank 0 is raised on every rank as :class:`RankFailedError`.
        """
        if self.is_main:
            try:
                result = work()
            except BaseException as error:
                self._share_status(f"{type(error).__name__}: {error}")
                raise
            self._share_status(None)
            return result
        status = self._share_status(None)
        if status is not None:
            raise RankFailedError(f"rank 0 failed, so rank {self.rank} stops: {status}")
        return (others or work)()

    def _share_status(self, status: str | None) -> str | None:
        """Rank 0's ``status`` on every rank."""
        shared = [status]
        dist.broadcast_object_list(shared, src=0, group=self.group)
        return shared[0]

    @contextmanager
    def stop_together(self) -> Iterator[None]:
        """On an exception, say which rank failed and close the group so the others stop too."""
        try:
            yield
        except BaseException as error:
            print(
                f"molmtl: rank {self.rank} of {self.world_size} failed: "
                f"{type(error).__name__}: {error}",
                file=sys.stderr,
            )
            self.close()
            raise

    def close(self) -> None:
        """Destroy the process group if :func:`join` created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def rank_device(device: torch.device) -> torch.device:
    """A CUDA device without an index → this node's ``LOCAL_RANK``-th GPU (torchrun's convention)."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def join(device: torch.device) -> DataParallel | None:
    """The ranks this process trains with, or None when it trains alone.

    Uses an initialised default process group if there is one (of size > 1); else, when
    torchrun set ``WORLD_SIZE`` > 1, initialises one (NCCL on CUDA, gloo otherwise) whose
    collectives give up after ``$MOLMTL_DISTRIBUTED_TIMEOUT`` seconds (default 1800).
    """
    if dist.is_available() and dist.is_initialized():
        if dist.get_world_size() == 1:
            return None
        return DataParallel(dist.get_rank(), dist.get_world_size())
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_VARIABLE, DEFAULT_TIMEOUT_S)))
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=timeout, device_id=device)
    else:
        dist.init_process_group("gloo", timeout=timeout)
    return DataParallel(dist.get_rank(), dist.get_world_size(), owns_group=True)
