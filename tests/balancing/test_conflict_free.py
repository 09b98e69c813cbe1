"""ConFIG: agreement with the parameter-space formula and the properties of its direction."""

from __future__ import annotations

import pytest
import torch
from test_aggregators import SHAPES, random_grads, weights_of
from test_fairgrad import spread_grads

from molmtl.balancing import IMTL, ConFIG


def reference_config(grads: torch.Tensor) -> torch.Tensor:
    """The official code's update in the parameter space: ``x = lstsq(U, 1)`` for the unit
    gradients ``U``, then ``(sum_i g_i . x̂) x̂``."""
    units = grads / grads.norm(dim=1, keepdim=True)
    direction = torch.linalg.pinv(units) @ torch.ones(grads.shape[0], dtype=grads.dtype)
    unit_direction = direction / direction.norm()
    return (grads @ unit_direction).sum() * unit_direction


@pytest.mark.parametrize(("n_tasks", "n_params", "seed"), [*SHAPES, (6, 3, 4), (9, 2, 5)])
def test_config_matches_the_parameter_space_formula(n_tasks, n_params, seed):
    grads = random_grads(n_tasks, n_params, seed)
    expected = reference_config(grads)
    update = weights_of(ConFIG(), grads) @ grads
    torch.testing.assert_close(update, expected, rtol=1e-9, atol=1e-12 * expected.norm().item())


@pytest.mark.parametrize("seed", range(5))
def test_config_gives_every_task_the_same_cosine(seed):
    grads = spread_grads(8, seed, decades=6)  # independent: T <= P
    update = weights_of(ConFIG(), grads) @ grads
    cosines = grads @ update / (grads.norm(dim=1) * update.norm())
    assert (cosines > 0).all()
    torch.testing.assert_close(cosines, cosines.mean().expand(8), rtol=1e-9, atol=0)


@pytest.mark.parametrize("seed", range(5))
def test_config_has_imtls_direction_and_the_summed_projection_as_length(seed):
    grads = spread_grads(6, seed, decades=4)
    update = weights_of(ConFIG(), grads) @ grads
    direction = weights_of(IMTL(), grads) @ grads
    direction = direction / direction.norm()
    torch.testing.assert_close(update / update.norm(), direction, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(update.norm(), (grads @ direction).sum())


def test_config_zero_gradient_gets_zero_weight_and_is_ignored():
    grads = random_grads(4, 9, 2)
    grads[3] = 0.0
    weights = weights_of(ConFIG(), grads)
    assert weights[3] == 0
    torch.testing.assert_close(weights[:3], weights_of(ConFIG(), grads[:3]))


def test_config_opposite_gradients_give_zero_update():
    base = random_grads(1, 6, 0)[0]
    update = weights_of(ConFIG(), torch.stack([base, -base])) @ torch.stack([base, -base])
    torch.testing.assert_close(update, torch.zeros(6).double())
