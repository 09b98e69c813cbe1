"""Data-parallel training (specs/dbmtl.md's extension): two ranks equal one process on the union.

Each rank sees half of every batch. The update must equal single-process training on the whole
batch: the loss values are reduced first, then the per-task gradients, before smoothing.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tinymtl import TinyMTL, make_batch

from molmtl import balancing

WORLD_SIZE = 2
N_STEPS = 4
METHODS = ["dbmtl", "gradmax", "imtl+log"]
# Per step and task, whether it is labelled on rank 0 and on rank 1 (a labelled task has labels
# for the whole half-batch, so both ranks' mean losses weigh the same examples).
LABELLED = [
    [(True, True), (True, True), (True, True)],
    [(True, False), (True, True), (False, False)],
    [(True, True), (False, True), (True, True)],
    [(True, True), (True, True), (False, True)],
]


def _train(method: str, rank: int | None, world_size: int = WORLD_SIZE, **options) -> torch.Tensor:
    """Parameters after N_STEPS of SGD: one process on whole batches (rank None) or one rank's half."""
    torch.set_num_threads(1)
    model = TinyMTL(n_tasks=3, seed=0)
    balancer = balancing.get(method, **model.balancer_kwargs(), **options)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(N_STEPS):
        x, y = make_batch(n_tasks=3, n=16, seed=step)
        halves = range(world_size) if rank is None else [rank]
        rows = torch.cat([torch.arange(h * 8, (h + 1) * 8) for h in halves])
        labelled = torch.tensor([[LABELLED[step][t][h] for t in range(3)] for h in halves])
        label_mask = labelled.repeat_interleave(8, dim=0)  # [rows, T]
        squared = torch.where(label_mask, (model(x[rows]) - y[rows]) ** 2, 0.0)
        counts = label_mask.sum(dim=0)
        losses = squared.sum(dim=0) / counts.clamp(min=1)
        optimizer.zero_grad()
        balancer.backward(losses, mask=counts > 0)
        optimizer.step()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _rank_main(rank: int, store_path: str, method: str, out_path: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{store_path}", rank=rank, world_size=WORLD_SIZE
    )
    try:
        parameters = _train(method, rank, distributed=True)
        torch.save(parameters, f"{out_path}.{rank}")
        # Both ranks finish communicating before either tears gloo down (else an abort at exit).
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("method", METHODS)
def test_two_ranks_equal_one_process_on_the_union(method, tmp_path):
    out_path = str(tmp_path / "params")
    mp.spawn(
        _rank_main,
        args=(str(tmp_path / "store"), method, out_path),
        nprocs=WORLD_SIZE,
        join=True,
    )
    expected = _train(method, rank=None)
    for rank in range(WORLD_SIZE):
        parameters = torch.load(f"{out_path}.{rank}", weights_only=True)
        torch.testing.assert_close(parameters, expected, rtol=1e-5, atol=1e-6)
    # Control: one half alone trains differently, so the agreement above is not vacuous.
    assert not torch.allclose(_train(method, rank=0, world_size=1), expected, atol=1e-4)


def test_distributed_needs_an_initialised_process_group():
    model = TinyMTL()
    with pytest.raises(ValueError, match="init_process_group"):
        balancing.get("dbmtl", **model.balancer_kwargs(), distributed=True)
