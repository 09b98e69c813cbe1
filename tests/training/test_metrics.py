from __future__ import annotations

import math

import pytest
import torch

from molmtl.training.metrics import absolute_error_sums, delta_m_percent, masked_mse, normalized_mae


def _predictions_and_targets(seed: int, missing: float):
    generator = torch.Generator().manual_seed(seed)
    prediction = torch.randn(9, 4, generator=generator, requires_grad=True)
    target = torch.randn(9, 4, generator=generator)
    target[torch.rand(9, 4, generator=generator) < missing] = float("nan")
    target[:, 3] = float("nan")  # one task never labelled
    return prediction, target


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("missing", [0.0, 0.4])
def test_masked_mse_equals_a_loop_over_labelled_entries(seed, missing):
    prediction, target = _predictions_and_targets(seed, missing)
    losses, mask = masked_mse(prediction.detach(), target)
    prediction = prediction.detach()
    for task in range(4):
        labelled = [i for i in range(9) if not math.isnan(target[i, task])]
        expected = sum((prediction[i, task] - target[i, task]) ** 2 for i in labelled) / max(
            len(labelled), 1
        )
        assert losses[task].item() == pytest.approx(float(expected), rel=1e-6, abs=1e-12)
        assert bool(mask[task]) == bool(labelled)


@pytest.mark.parametrize("seed", range(3))
def test_missing_labels_never_reach_the_gradient(seed):
    prediction, target = _predictions_and_targets(seed, 0.4)
    losses, _ = masked_mse(prediction, target)
    losses.sum().backward()
    assert torch.isfinite(prediction.grad).all()
    assert torch.all(prediction.grad[torch.isnan(target)] == 0)


@pytest.mark.parametrize("seed", range(3))
def test_absolute_error_sums_equal_a_loop(seed):
    prediction, target = _predictions_and_targets(seed, 0.4)
    sums, counts = absolute_error_sums(prediction.detach(), target)
    for task in range(4):
        labelled = ~torch.isnan(target[:, task])
        assert counts[task] == labelled.sum()
        expected = (prediction.detach()[labelled, task] - target[labelled, task]).abs().sum()
        assert sums[task].item() == pytest.approx(expected.item(), rel=1e-6)


def test_delta_m_is_the_mean_relative_change_in_percent():
    reference = torch.tensor([1.0, 2.0, 4.0])
    assert delta_m_percent(reference, reference).item() == 0.0
    assert delta_m_percent(torch.tensor([1.1, 1.8, 4.0]), reference).item() == pytest.approx(
        0.0, abs=1e-6
    )
    assert delta_m_percent(torch.tensor([2.0, 4.0, 8.0]), reference).item() == pytest.approx(100.0)


def test_scores_skip_tasks_without_labels():
    mae = torch.tensor([1.0, float("nan"), 3.0])
    assert normalized_mae(mae, torch.tensor([1.0, 1.0, 3.0])).item() == pytest.approx(1.0)
    assert delta_m_percent(mae, torch.tensor([2.0, 1.0, 3.0])).item() == pytest.approx(-25.0)
