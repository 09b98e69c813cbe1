"""GradDrop: agreement with a plain per-coordinate loop, its seeded random state, and masks."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from test_aggregators import SHAPES, all_present, random_grads

from molmtl.balancing import GradDrop


def first_uniforms(seed: int, n_params: int, dtype=torch.float64) -> torch.Tensor:
    """The uniforms of the first training step of ``GradDrop(seed=seed)`` on the CPU."""
    return torch.rand(n_params, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def reference_graddrop(grads: np.ndarray, uniforms: np.ndarray, leak: float) -> np.ndarray:
    """Algorithm 1 of the paper, one coordinate at a time."""
    update = np.zeros(grads.shape[1])
    for k in range(grads.shape[1]):
        column = grads[:, k]
        if np.abs(column).sum() == 0:
            continue
        purity = 0.5 * (1 + column.sum() / np.abs(column).sum())
        for value in column:
            kept = (purity > uniforms[k] and value > 0) or (purity < uniforms[k] and value < 0)
            update[k] += (leak + (1 - leak) * kept) * value
    return update


def step(aggregator: GradDrop, grads: torch.Tensor, mask=None):
    mask = all_present(grads.shape[0]) if mask is None else mask
    return aggregator.aggregate(grads, torch.ones(grads.shape[0], dtype=grads.dtype), mask)


@pytest.mark.parametrize("leak", [0.0, 0.3])
@pytest.mark.parametrize(("n_tasks", "n_params", "seed"), SHAPES)
def test_graddrop_matches_a_plain_loop(leak, n_tasks, n_params, seed):
    grads = random_grads(n_tasks, n_params, seed)
    grads[:, 0] = 0.0  # a column with nothing to drop
    update, _ = step(GradDrop(leak=leak, seed=seed), grads)
    uniforms = first_uniforms(seed, n_params).numpy()
    np.testing.assert_allclose(
        update.numpy(), reference_graddrop(grads.numpy(), uniforms, leak), atol=1e-12
    )


def test_graddrop_keeps_one_sign_per_coordinate():
    grads = random_grads(5, 200, 0)
    update, shares = step(GradDrop(seed=1), grads)
    positive = grads.clamp(min=0).sum(dim=0)
    negative = grads.clamp(max=0).sum(dim=0)
    assert torch.all((update == positive) | (update == negative))
    assert ((shares > 0) & (shares < 1)).all()


def test_graddrop_without_sign_conflicts_is_the_sum():
    grads = random_grads(4, 30, 2).abs()
    update, shares = step(GradDrop(seed=0), grads)
    torch.testing.assert_close(update, grads.sum(dim=0))
    torch.testing.assert_close(shares, torch.ones(4).double())


def test_full_leak_is_the_sum():
    grads = random_grads(4, 30, 3)
    update, shares = step(GradDrop(leak=1.0, seed=0), grads)
    torch.testing.assert_close(update, grads.sum(dim=0))
    torch.testing.assert_close(shares, torch.ones(4).double())


def test_graddrop_shares_are_the_kept_fraction_of_each_squared_norm():
    grads = random_grads(3, 50, 4)
    _, shares = step(GradDrop(seed=2), grads)
    uniforms = first_uniforms(2, 50)
    purity = 0.5 * (1 + grads.sum(dim=0) / grads.abs().sum(dim=0))
    kept = torch.where(purity > uniforms, grads > 0, grads < 0)
    torch.testing.assert_close(shares, (grads * kept).norm(dim=1) ** 2 / grads.norm(dim=1) ** 2)


@pytest.mark.parametrize("present", [[True, False, True, True], [False, True, False, False]])
def test_masked_tasks_take_no_part(present):
    grads = random_grads(4, 40, 5)
    mask = torch.tensor(present)
    grads[~mask] = torch.nan
    update, shares = step(GradDrop(seed=3), grads, mask)
    expected_update, expected_shares = step(GradDrop(seed=3), grads[mask])
    assert (shares[~mask] == 0).all()
    torch.testing.assert_close(update, expected_update)
    torch.testing.assert_close(shares[mask], expected_shares)


def test_graddrop_draws_new_uniforms_every_step_from_its_seed():
    grads = random_grads(4, 60, 6)
    first, second = GradDrop(seed=4), GradDrop(seed=4)
    updates = [step(first, grads)[0] for _ in range(2)]
    assert not torch.equal(updates[0], updates[1])
    assert torch.equal(step(second, grads)[0], updates[0])
    torch.manual_seed(0)
    drawn = step(GradDrop(), grads)[0]
    torch.manual_seed(0)
    assert torch.equal(step(GradDrop(), grads)[0], drawn)


def test_graddrop_resumes_from_its_state_dict():
    inputs = [random_grads(4, 60, seed) for seed in range(4)]
    original = GradDrop(seed=7)
    for grads in inputs[:2]:
        step(original, grads)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    resumed = GradDrop(seed=8)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for grads in inputs[2:]:
        assert torch.equal(step(resumed, grads)[0], step(original, grads)[0])


def test_graddrop_rejects_bad_options_and_state():
    with pytest.raises(ValueError, match="leak"):
        GradDrop(leak=1.5)
    with pytest.raises(ValueError, match="'seed'"):
        GradDrop(seed=0).load_state_dict({"bogus": 1})


@pytest.mark.gpu
def test_graddrop_does_not_sync_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    grads = random_grads(5, 1000, 0, dtype=torch.float32).cuda()
    losses, mask = torch.ones(5, device="cuda"), all_present(5).cuda()
    aggregator = GradDrop(seed=0)
    aggregator.aggregate(grads, losses, mask)  # loads the kernels
    torch.cuda.set_sync_debug_mode("error")
    try:
        update, shares = aggregator.aggregate(grads, losses, mask)
        asked = aggregator.weights(grads, losses, mask)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert update.shape == (1000,) and torch.isfinite(shares).all() and asked.shape == (5,)
