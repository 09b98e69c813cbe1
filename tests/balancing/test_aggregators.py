"""Gradient aggregators: agreement with slow references and properties over shared inputs."""

from __future__ import annotations

import copy
import io
import itertools
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from tinymtl import assert_same_state

from molmtl.balancing import (
    IMTL,
    MGDA,
    Aggregator,
    AlignedMTL,
    CAGrad,
    ConFIG,
    DualProj,
    ExcessMTL,
    FairGrad,
    GradDrop,
    GradMax,
    GradNorm,
    GradVac,
    GramianWeightedAggregator,
    MoCo,
    NashMTL,
    PCGrad,
    SDMGrad,
    UPGrad,
)
from molmtl.balancing._methods._gram import masked_gram, min_norm_simplex_weights

#: the aggregators that are weightings of the Gram matrix.
FACTORIES: dict[str, Callable[[], Aggregator]] = {
    "mgda": MGDA,
    "pcgrad": lambda: PCGrad(seed=0),
    "gradvac": lambda: GradVac(seed=0),
    "cagrad": CAGrad,
    "imtl": IMTL,
    "nashmtl": NashMTL,
    "alignedmtl": AlignedMTL,
    "fairgrad": FairGrad,
    "upgrad": UPGrad,
    "dualproj": DualProj,
    "config": ConFIG,
    "sdmgrad": SDMGrad,
}
#: methods without random task orders.
DETERMINISTIC = ["mgda", "cagrad", "imtl", "nashmtl", "alignedmtl"]
DETERMINISTIC += ["fairgrad", "upgrad", "dualproj", "config"]
DETERMINISTIC += ["sdmgrad"]
#: methods whose weights do not change when all gradients are scaled by the same factor.
SCALE_INVARIANT = ["mgda", "cagrad", "imtl", "alignedmtl", "pcgrad", "gradvac"]
SCALE_INVARIANT += ["upgrad", "dualproj", "config"]
SCALE_INVARIANT += ["sdmgrad"]
#: (n_tasks, n_params, seed) of the shared random inputs.
SHAPES = [(2, 7, 0), (3, 5, 1), (5, 12, 2), (8, 40, 3)]


def random_grads(n_tasks: int, n_params: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """``[T, P]`` gradients with a shared component (so some pairs agree, some conflict) and
    norms spread over two orders of magnitude."""
    generator = torch.Generator().manual_seed(seed)
    shared = torch.randn(n_params, generator=generator, dtype=torch.float64)
    grads = torch.randn(n_tasks, n_params, generator=generator, dtype=torch.float64) + 0.5 * shared
    scales = torch.logspace(-1, 1, n_tasks, dtype=torch.float64)
    return (grads * scales[torch.randperm(n_tasks, generator=generator)][:, None]).to(dtype)


def all_present(n_tasks: int) -> torch.Tensor:
    return torch.ones(n_tasks, dtype=torch.bool)


def weights_of(aggregator: Aggregator, grads: torch.Tensor, mask=None, losses=None):
    """``aggregator.weights``: the ``[T]`` weights, without moving the state on."""
    n_tasks = grads.shape[0]
    mask = all_present(n_tasks) if mask is None else mask
    losses = torch.ones(n_tasks, dtype=grads.dtype) if losses is None else losses
    return aggregator.weights(grads, losses, mask)


def step_weights(aggregator: Aggregator, grads: torch.Tensor) -> torch.Tensor:
    """The ``[T]`` weights of a training step (``aggregate``), which moves the state on."""
    n_tasks = grads.shape[0]
    return aggregator.aggregate(
        grads, torch.ones(n_tasks, dtype=grads.dtype), all_present(n_tasks)
    )[1]


class FixedOrders:
    """Stands in for ``TaskOrders``: hands out given orders (row i = task i's visiting order)."""

    def __init__(self, orders: list[list[int]] | None = None) -> None:
        self.orders = orders

    def draw(self, n_tasks: int, device, *, include_self: bool) -> torch.Tensor:
        orders = self.orders or [list(range(n_tasks)) for _ in range(n_tasks)]
        if not include_self:
            orders = [[j for j in row if j != i] for i, row in enumerate(orders)]
        return torch.tensor(orders, device=device)

    peek = draw


def random_orders(n_tasks: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [list(rng.permutation(n_tasks)) for _ in range(n_tasks)]


# ---------------------------------------------------------------- slow references


def reference_pcgrad(grads: np.ndarray, orders: list[list[int]]) -> np.ndarray:
    projected = [row.copy() for row in grads]
    for i, order in enumerate(orders):
        for j in order:
            dot = projected[i] @ grads[j]
            if dot < 0:
                projected[i] = projected[i] - dot / (grads[j] @ grads[j]) * grads[j]
    return np.sum(projected, axis=0)


def reference_gradvac(grads, orders, targets, beta=0.5, eps=1e-8):
    """Returns the update and updates ``targets`` in place."""
    vaccinated = []
    for i, order in enumerate(orders):
        current = grads[i].copy()
        for j in (j for j in order if j != i):
            partner = grads[j]
            cosine = current @ partner / (np.linalg.norm(current) * np.linalg.norm(partner) + eps)
            target = targets[i, j]
            if cosine < target:
                factor = (
                    np.linalg.norm(current)
                    * (target * np.sqrt(1 - cosine**2) - cosine * np.sqrt(1 - target**2))
                    / (np.linalg.norm(partner) * np.sqrt(1 - target**2) + eps)
                )
                current = current + factor * partner
            targets[i, j] = (1 - beta) * target + beta * cosine
        vaccinated.append(current)
    return np.sum(vaccinated, axis=0)


def simplex_grid(n_tasks: int, steps: int) -> np.ndarray:
    points = [
        np.array([*c, steps - sum(c)]) / steps
        for c in itertools.product(range(steps + 1), repeat=n_tasks - 1)
        if sum(c) <= steps
    ]
    return np.array(points)


def reference_min_norm_qp(gram: np.ndarray) -> float:
    """Min of ``w^T G w`` over the simplex by SLSQP from several starts."""
    n_tasks = gram.shape[0]
    best = np.inf
    for start in [np.full(n_tasks, 1 / n_tasks), *np.eye(n_tasks)]:
        result = minimize(
            lambda w: w @ gram @ w,
            start,
            jac=lambda w: 2 * gram @ w,
            bounds=[(0, 1)] * n_tasks,
            constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
            method="SLSQP",
            options={"ftol": 1e-15, "maxiter": 1000},
        )
        best = min(best, result.fun)
    return best


# ---------------------------------------------------------------- agreement with references


@pytest.mark.parametrize("n_tasks", [2, 3])
@pytest.mark.parametrize("seed", range(3))
def test_mgda_matches_brute_force_grid(n_tasks, seed):
    grads = random_grads(n_tasks, 4, seed)
    gram = (grads @ grads.T).numpy()
    grid = simplex_grid(n_tasks, 2000 if n_tasks == 2 else 300)
    values = np.einsum("ki,ij,kj->k", grid, gram, grid)
    weights = weights_of(MGDA(), grads).numpy()
    assert weights @ gram @ weights <= values.min() + 1e-12
    np.testing.assert_allclose(weights, grid[values.argmin()], atol=2e-2)
    np.testing.assert_allclose(weights.sum(), 1.0)


@pytest.mark.parametrize(("n_tasks", "n_params", "seed"), SHAPES)
def test_mgda_reaches_the_qp_optimum(n_tasks, n_params, seed):
    grads = random_grads(n_tasks, n_params, seed)
    gram = (grads @ grads.T).numpy()
    weights = weights_of(MGDA(), grads).numpy()
    assert (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(), 1.0)
    assert weights @ gram @ weights <= reference_min_norm_qp(gram) * (1 + 1e-9) + 1e-14


@pytest.mark.parametrize("second_scale", [1.0, 1e-6, 1e6])
def test_mgda_two_task_closed_form_equals_the_general_solver(second_scale):
    for seed in range(5):
        grads = random_grads(2, 3, seed) * torch.tensor([[1.0], [second_scale]]).double()
        expected = min_norm_simplex_weights((grads @ grads.T).numpy())
        np.testing.assert_allclose(
            weights_of(MGDA(), grads).numpy(), expected, rtol=1e-6, atol=1e-12
        )


@pytest.mark.parametrize("normalization", ["l2", "loss", "loss+"])
def test_mgda_normalizations_take_the_min_norm_of_normalised_gradients(normalization):
    grads = random_grads(4, 9, 5)
    losses = torch.tensor([0.5, 2.0, 3.0, 0.1], dtype=torch.float64)
    norms = grads.norm(dim=1)
    divisor = {"l2": norms, "loss": losses, "loss+": losses * norms}[normalization]
    normalised = grads / divisor[:, None]
    expected = weights_of(MGDA(), normalised) @ normalised
    update = weights_of(MGDA(normalization=normalization), grads, losses=losses) @ grads
    torch.testing.assert_close(update, expected)


def test_mgda_rejects_unknown_normalization():
    with pytest.raises(ValueError, match="'none'"):
        MGDA(normalization="unit")


@pytest.mark.parametrize(("n_tasks", "n_params", "seed"), SHAPES)
def test_pcgrad_matches_plain_loop(n_tasks, n_params, seed):
    grads = random_grads(n_tasks, n_params, seed)
    orders = random_orders(n_tasks, seed)
    aggregator = PCGrad()
    aggregator._orders = FixedOrders(orders)
    update = weights_of(aggregator, grads) @ grads
    np.testing.assert_allclose(update.numpy(), reference_pcgrad(grads.numpy(), orders), atol=1e-10)


@pytest.mark.parametrize(("n_tasks", "n_params", "seed"), SHAPES)
def test_gradvac_matches_plain_loop_over_steps(n_tasks, n_params, seed):
    aggregator = GradVac()
    targets = np.zeros((n_tasks, n_tasks))
    for step in range(3):
        grads = random_grads(n_tasks, n_params, seed + 10 * step)
        orders = random_orders(n_tasks, seed + step)
        aggregator._orders = FixedOrders(orders)
        update = step_weights(aggregator, grads) @ grads
        expected = reference_gradvac(grads.numpy(), orders, targets)
        np.testing.assert_allclose(update.numpy(), expected, atol=1e-9)
        np.testing.assert_allclose(aggregator.target_similarity_.numpy(), targets, atol=1e-12)


def test_gradvac_first_step_is_pcgrad_without_self_projection():
    grads = random_grads(5, 12, 2)
    orders = random_orders(5, 0)
    vaccine = GradVac(eps=0.0)
    vaccine._orders = FixedOrders(orders)
    surgery = [[j for j in row if j != i] for i, row in enumerate(orders)]
    np.testing.assert_allclose(
        (weights_of(vaccine, grads) @ grads).numpy(),
        reference_pcgrad(grads.numpy(), surgery),
        atol=1e-10,
    )


def reference_cagrad_worst_improvement(grads: np.ndarray, c: float) -> float:
    """Primal CAGrad: max_d min_i g_i . d subject to |d - g_0| <= c |g_0|, by SLSQP in (d, t)."""
    average = grads.mean(axis=0)
    radius = c * np.linalg.norm(average)
    n_params = grads.shape[1]
    result = minimize(
        lambda x: -x[-1],
        np.concatenate([average, [(grads @ average).min()]]),
        constraints=[
            {"type": "ineq", "fun": lambda x: grads @ x[:-1] - x[-1]},
            {"type": "ineq", "fun": lambda x: radius**2 - np.sum((x[:-1] - average) ** 2)},
        ],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 2000},
    )
    assert result.success, result.message
    assert n_params == len(result.x) - 1
    return -result.fun


@pytest.mark.parametrize(("n_tasks", "n_params", "seed"), SHAPES[:3])
@pytest.mark.parametrize("c", [0.2, 0.5])
def test_cagrad_solves_the_primal_problem(n_tasks, n_params, seed, c):
    grads = random_grads(n_tasks, n_params, seed)
    direction = (weights_of(CAGrad(c=c, rescale=0), grads) @ grads).numpy()
    average = grads.numpy().mean(axis=0)
    np.testing.assert_allclose(
        np.linalg.norm(direction - average), c * np.linalg.norm(average), rtol=1e-6
    )
    worst = (grads.numpy() @ direction).min()
    reference = reference_cagrad_worst_improvement(grads.numpy(), c)
    assert worst >= reference - 1e-6 * abs(reference)


@pytest.mark.parametrize(("rescale", "divisor"), [(0, 1.0), (1, 1.25), (2, 1.5)])
def test_cagrad_rescale_divides_the_direction(rescale, divisor):
    grads = random_grads(3, 5, 1)
    torch.testing.assert_close(
        weights_of(CAGrad(rescale=rescale), grads) * divisor, weights_of(CAGrad(rescale=0), grads)
    )


def test_cagrad_rejects_bad_options():
    with pytest.raises(ValueError, match="rescale"):
        CAGrad(rescale=3)
    with pytest.raises(ValueError, match="c must be"):
        CAGrad(c=-1.0)


@pytest.mark.parametrize(("n_tasks", "n_params", "seed"), SHAPES)
def test_imtl_equalises_projections_on_unit_gradients(n_tasks, n_params, seed):
    grads = random_grads(n_tasks, n_params, seed)
    weights = weights_of(IMTL(), grads)
    projections = (grads / grads.norm(dim=1, keepdim=True)) @ (weights @ grads)
    torch.testing.assert_close(projections, projections.mean().expand(n_tasks))
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_imtl_matches_the_papers_closed_form():
    grads = random_grads(4, 9, 7)
    units = grads / grads.norm(dim=1, keepdim=True)
    differences, unit_differences = grads[:1] - grads[1:], units[:1] - units[1:]
    rest = grads[0] @ unit_differences.T @ torch.linalg.inv(differences @ unit_differences.T)
    expected = torch.cat([1 - rest.sum(dim=0, keepdim=True), rest])
    torch.testing.assert_close(weights_of(IMTL(), grads), expected)


@pytest.mark.parametrize(("n_tasks", "n_params", "seed"), SHAPES)
def test_nashmtl_solves_the_bargaining_condition(n_tasks, n_params, seed):
    grads = random_grads(n_tasks, n_params, seed)
    alpha = weights_of(NashMTL(max_norm=0.0), grads)
    gram = grads @ grads.T
    assert (alpha > 0).all()
    torch.testing.assert_close(gram @ alpha, 1 / alpha, rtol=1e-6, atol=0)


def test_nashmtl_solves_gradients_of_very_different_scales():
    grads = random_grads(11, 64, 0) * torch.logspace(-3, 3, 11, dtype=torch.float64)[:, None]
    alpha = weights_of(NashMTL(max_norm=0.0), grads)
    torch.testing.assert_close(alpha * (grads @ grads.T @ alpha), torch.ones(11).double())


@pytest.mark.parametrize("max_norm", [0.5, 1.0, 100.0])
def test_nashmtl_clips_the_update_norm(max_norm):
    grads = random_grads(5, 12, 3)
    update = weights_of(NashMTL(max_norm=max_norm), grads) @ grads
    # Unclipped, the bargaining solution has |d|^2 = sum_i alpha_i (G alpha)_i = T.
    torch.testing.assert_close(update.norm(), torch.tensor(min(max_norm, 5**0.5)).double())


def test_nashmtl_reuses_weights_between_updates():
    aggregator = NashMTL(update_weights_every=2, max_norm=0.0)
    first = step_weights(aggregator, random_grads(3, 5, 0))
    second = step_weights(aggregator, random_grads(3, 5, 1))
    third = step_weights(aggregator, random_grads(3, 5, 1))
    torch.testing.assert_close(first, second)
    assert not torch.allclose(second, third)
    assert aggregator.step_ == 3


@pytest.mark.parametrize(("n_tasks", "n_params", "seed"), SHAPES)
def test_alignedmtl_matches_svd_reference(n_tasks, n_params, seed):
    grads = random_grads(n_tasks, n_params, seed)
    left, singular, right = np.linalg.svd(grads.numpy(), full_matrices=False)
    expected = singular.min() * left.sum(axis=0) @ right  # sum of rows of sigma_min U V^T
    update = weights_of(AlignedMTL(), grads) @ grads
    np.testing.assert_allclose(update.numpy(), expected, atol=1e-10)


@pytest.mark.parametrize(("n_tasks", "n_params", "seed"), SHAPES)
def test_alignedmtl_aligned_gradients_have_condition_number_one(n_tasks, n_params, seed):
    grads = random_grads(n_tasks, n_params, seed)
    gram = grads @ grads.T
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)
    balance = (
        eigenvalues.min().sqrt() * eigenvectors @ torch.diag(eigenvalues**-0.5) @ eigenvectors.T
    )
    singular = torch.linalg.svdvals(balance @ grads)
    torch.testing.assert_close(singular, singular.min().expand(n_tasks))
    torch.testing.assert_close(weights_of(AlignedMTL(), grads), balance.sum(dim=1))


@pytest.mark.parametrize("scale_mode", ["median", "rmse"])
def test_alignedmtl_scale_modes_only_rescale(scale_mode):
    grads = random_grads(5, 12, 2)
    eigenvalues = torch.linalg.eigvalsh(grads @ grads.T)
    target = {"median": eigenvalues.sort().values[2], "rmse": eigenvalues.mean()}[scale_mode]
    expected = weights_of(AlignedMTL(), grads) * (target / eigenvalues.min()).sqrt()
    torch.testing.assert_close(weights_of(AlignedMTL(scale_mode=scale_mode), grads), expected)


# ---------------------------------------------------------------- properties of all methods


@pytest.mark.parametrize("name", DETERMINISTIC)
@pytest.mark.parametrize(("n_tasks", "n_params", "seed"), SHAPES)
def test_weights_are_permutation_equivariant(name, n_tasks, n_params, seed):
    grads = random_grads(n_tasks, n_params, seed)
    permutation = torch.randperm(n_tasks, generator=torch.Generator().manual_seed(seed))
    weights = weights_of(FACTORIES[name](), grads)
    permuted = weights_of(FACTORIES[name](), grads[permutation])
    torch.testing.assert_close(permuted, weights[permutation], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", SCALE_INVARIANT)
@pytest.mark.parametrize("factor", [1e-4, 30.0])
def test_weights_are_invariant_to_a_common_gradient_scale(name, factor):
    grads = random_grads(5, 12, 4)
    torch.testing.assert_close(
        weights_of(FACTORIES[name](), grads * factor),
        weights_of(FACTORIES[name](), grads),
        rtol=1e-6,
        atol=1e-9,
    )


def test_nashmtl_weights_scale_inversely_with_the_gradients():
    grads = random_grads(5, 12, 4)
    torch.testing.assert_close(
        weights_of(NashMTL(max_norm=0.0), grads * 30.0),
        weights_of(NashMTL(max_norm=0.0), grads) / 30.0,
    )


@pytest.mark.parametrize("name", ["mgda_l2", "imtl"])
def test_update_direction_is_invariant_to_one_task_scale(name):
    aggregator = MGDA(normalization="l2") if name == "mgda_l2" else IMTL()
    grads = random_grads(4, 9, 6)
    rescaled = grads * torch.tensor([1.0, 50.0, 1.0, 0.02], dtype=torch.float64)[:, None]
    direction = weights_of(aggregator, grads) @ grads
    rescaled_direction = weights_of(aggregator, rescaled) @ rescaled
    torch.testing.assert_close(
        rescaled_direction / rescaled_direction.norm(), direction / direction.norm()
    )


def with_fixed_orders(aggregator: Aggregator) -> Aggregator:
    if hasattr(aggregator, "_orders"):
        aggregator._orders = FixedOrders()
    return aggregator


MASKS = [
    [True, False, True, True, False],
    [False, True, True, True, True],
    [False, True] + [False] * 3,
]


@pytest.mark.parametrize("name", list(FACTORIES))
@pytest.mark.parametrize("present", MASKS)
def test_masked_tasks_get_zero_weight_and_are_ignored(name, present):
    grads = random_grads(5, 12, 8)
    grads[~torch.tensor(present)] = torch.nan  # nothing of an absent task may leak through
    mask = torch.tensor(present)
    weights = weights_of(with_fixed_orders(FACTORIES[name]()), grads, mask=mask)
    subset = weights_of(with_fixed_orders(FACTORIES[name]()), grads[mask])
    assert (weights[~mask] == 0).all()
    torch.testing.assert_close(weights[mask], subset, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_all_tasks_masked_gives_zero_weights(name):
    grads = random_grads(3, 5, 0)
    weights = weights_of(FACTORIES[name](), grads, mask=torch.zeros(3, dtype=torch.bool))
    assert (weights == 0).all()


#: the single weight for T = 1 and a gradient of norm 2 (CAGrad: (1 + c) / (1 + c^2);
#: Nash-MTL: alpha = 1 / |g|, |d| = 1 is not clipped).
SINGLE_TASK_WEIGHT = {
    "mgda": 1.0,
    "pcgrad": 1.0,
    "gradvac": 1.0,
    "cagrad": 1.2,
    "imtl": 1.0,
    "nashmtl": 0.5,
    "alignedmtl": 1.0,
    "fairgrad": 2 ** (-4 / 3),  # w = |g|^(-2α/(α+1)) for α = 2; |d| < 1 is not clipped
    "upgrad": 1.0,
    "dualproj": 1.0,
    "config": 1.0,
    "sdmgrad": 1.0,
}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_single_task(name):
    grads = torch.tensor([[0.0, 2.0, 0.0]], dtype=torch.float64)
    weights = weights_of(FACTORIES[name](), grads)
    torch.testing.assert_close(weights, torch.tensor([SINGLE_TASK_WEIGHT[name]]).double())


@pytest.mark.parametrize("name", list(FACTORIES))
def test_state_dict_round_trip_gives_identical_next_outputs(name):
    inputs = [random_grads(4, 9, seed) for seed in range(4)]
    original = FACTORIES[name]()
    for grads in inputs[:2]:
        step_weights(original, grads)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)  # as in a checkpoint
    buffer.seek(0)
    resumed = FACTORIES[name]()
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for grads in inputs[2:]:
        torch.testing.assert_close(step_weights(resumed, grads), step_weights(original, grads))


@pytest.mark.parametrize("name", ["pcgrad", "gradvac"])
def test_random_orders_are_seeded(name):
    grads = random_grads(6, 10, 1)
    cls = type(FACTORIES[name]())
    same = [weights_of(cls(seed=3), grads) for _ in range(2)]
    torch.testing.assert_close(same[0], same[1])
    torch.manual_seed(0)
    drawn = weights_of(cls(), grads)
    torch.manual_seed(0)
    torch.testing.assert_close(weights_of(cls(), grads), drawn)


@pytest.mark.parametrize("name", ["pcgrad", "gradvac"])
@pytest.mark.parametrize("seed", [3, None])
def test_random_orders_do_not_depend_on_the_default_dtype(name, seed):
    grads = random_grads(6, 10, 1)
    cls = type(FACTORIES[name]())
    default = torch.get_default_dtype()
    runs = []
    try:
        for dtype in (torch.float32, torch.float64):
            torch.set_default_dtype(dtype)
            torch.manual_seed(0)
            aggregator = cls(seed=seed)
            runs.append(torch.stack([step_weights(aggregator, grads) for _ in range(3)]))
    finally:
        torch.set_default_dtype(default)
    assert torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("name", list(FACTORIES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_works_in_float32_and_float64(name, dtype):
    grads = random_grads(5, 12, 9)
    weights = weights_of(with_fixed_orders(FACTORIES[name]()), grads.to(dtype))
    assert weights.dtype == dtype
    expected = weights_of(with_fixed_orders(FACTORIES[name]()), grads)
    torch.testing.assert_close(weights.double(), expected, rtol=1e-3, atol=1e-5)


def degenerate_inputs() -> dict[str, torch.Tensor]:
    base = random_grads(1, 6, 0)[0]
    other = random_grads(1, 6, 1)[0]
    return {
        "identical": torch.stack([base, base, other]),
        "parallel": torch.stack([base, 3 * base, other]),
        "opposite": torch.stack([base, -base, other]),
        "opposite_pair": torch.stack([base, -base]),
        "one_zero": torch.stack([base, torch.zeros(6, dtype=torch.float64), other]),
        "all_zero": torch.zeros(3, 6, dtype=torch.float64),
        "more_tasks_than_params": random_grads(6, 2, 3),
    }


@pytest.mark.parametrize("name", list(FACTORIES))
@pytest.mark.parametrize("case", list(degenerate_inputs()))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_degenerate_gradients_give_finite_weights(name, case, dtype):
    grads = degenerate_inputs()[case].to(dtype)
    weights = weights_of(FACTORIES[name](), grads)
    assert torch.isfinite(weights).all(), weights


def test_identical_gradients_share_their_weight():
    grads = degenerate_inputs()["identical"]
    for name in ["imtl", "nashmtl", "alignedmtl", "cagrad"]:
        weights = weights_of(FACTORIES[name](), grads)
        torch.testing.assert_close(weights[0], weights[1], msg=name)


def test_no_bargaining_solution_gives_zero_update():
    grads = degenerate_inputs()["opposite_pair"]
    assert (weights_of(NashMTL(), grads) == 0).all()
    # MGDA's min-norm point is 0 in that case too.
    torch.testing.assert_close(weights_of(MGDA(), grads) @ grads, torch.zeros(6).double())


def test_gradvac_rejects_a_different_number_of_tasks():
    aggregator = GradVac()
    step_weights(aggregator, random_grads(3, 5, 0))
    with pytest.raises(ValueError, match="3 tasks"):
        weights_of(aggregator, random_grads(4, 5, 0))


@pytest.mark.parametrize("name", list(FACTORIES))
@pytest.mark.parametrize("present", [MASKS[0], [True] * 5])
def test_gram_aggregators_are_weightings_of_the_gram_matrix(name, present):
    aggregator = with_fixed_orders(FACTORIES[name]())
    assert isinstance(aggregator, GramianWeightedAggregator)
    grads, mask = random_grads(5, 12, 8, dtype=torch.float32), torch.tensor(present)
    losses = torch.ones(5)
    gram = masked_gram(grads, mask)
    from_gram = aggregator.gramian_weights(gram, losses, mask, grads_dtype=grads.dtype)
    assert torch.equal(from_gram.to(grads.dtype), aggregator.weights(grads, losses, mask))


#: every aggregator, stateful ones with options that exercise their state.
ALL_AGGREGATORS: dict[str, Callable[[], Aggregator]] = {
    **FACTORIES,
    "nashmtl_every_2": lambda: NashMTL(update_weights_every=2),
    "gradmax": lambda: GradMax(beta_sigma=0.5),
    "gradnorm": lambda: GradNorm(lr=0.05),
    "graddrop": lambda: GradDrop(seed=0),
    "excessmtl": lambda: ExcessMTL(step_size=0.5),
    "moco": MoCo,
}


@pytest.mark.parametrize("name", list(ALL_AGGREGATORS))
@pytest.mark.parametrize("warm_up_steps", [0, 3])
def test_asking_for_weights_changes_no_state(name, warm_up_steps):
    """``weights`` twice leaves the state as it was and answers what the next step applies."""
    aggregator = ALL_AGGREGATORS[name]()
    generator = torch.Generator().manual_seed(0)
    losses = torch.rand(4, generator=generator, dtype=torch.float64) + 0.5
    mask = torch.tensor([True, False, True, True])
    for seed in range(warm_up_steps):
        aggregator.aggregate(random_grads(4, 9, seed), losses, torch.roll(mask, seed))
    grads = torch.where(mask[:, None], random_grads(4, 9, 10), 0.0)
    before = copy.deepcopy(aggregator.state_dict())
    asked = [aggregator.weights(grads, losses, mask) for _ in range(2)]
    assert_same_state(aggregator.state_dict(), before)
    _, applied = aggregator.aggregate(grads, losses, mask)
    assert torch.equal(asked[0], asked[1]) and torch.equal(asked[0], applied)


@pytest.mark.parametrize("name", ["gradmax", "gradnorm", "excessmtl", "moco"])
def test_stateful_weights_are_permutation_equivariant_over_steps(name):
    """Aggregators that keep per-task state beyond the Gram matrix, with missing labels."""
    permutation = torch.tensor([2, 0, 3, 1])
    original, permuted = ALL_AGGREGATORS[name](), ALL_AGGREGATORS[name]()
    generator = torch.Generator().manual_seed(1)
    for seed in range(4):
        mask = torch.roll(torch.tensor([True, False, True, True]), seed)
        grads = torch.where(mask[:, None], random_grads(4, 9, seed), 0.0)
        losses = torch.rand(4, generator=generator, dtype=torch.float64) + 0.5
        weights = original.aggregate(grads, losses, mask)[1]
        moved = permuted.aggregate(grads[permutation], losses[permutation], mask[permutation])[1]
        torch.testing.assert_close(moved, weights[permutation], rtol=1e-10, atol=1e-12)


def test_bad_grads_shape_is_named():
    with pytest.raises(ValueError, match=r"\[T, P\]"):
        IMTL().weights(torch.zeros(3), torch.ones(3), all_present(3))


def test_calling_an_aggregator_returns_the_update():
    grads = random_grads(3, 5, 0)
    torch.testing.assert_close(IMTL()(grads), weights_of(IMTL(), grads) @ grads)


def test_gram_of_long_float32_gradients_is_accurate():
    grads = random_grads(3, 50_000, 0, dtype=torch.float32)  # several CPU blocks
    exact = grads.double() @ grads.double().T
    gram = masked_gram(grads, torch.tensor([True, True, False]))
    torch.testing.assert_close(gram[:2, :2], exact[:2, :2], rtol=1e-6, atol=1e-6 * exact.max())
    assert (gram[2] == 0).all() and (gram[:, 2] == 0).all()


@pytest.mark.parametrize("name", ["mgda", "cagrad", "nashmtl"])
def test_failed_solves_raise(name, monkeypatch):
    import molmtl.balancing._methods._gram as gram_module
    import molmtl.balancing._methods.cagrad as cagrad_module
    import molmtl.balancing._methods.nashmtl as nash_module

    def failing_nnls(*args, **kwargs):
        raise RuntimeError("Maximum number of iterations reached.")

    def failing_slsqp(root, *args):
        return np.zeros(root.shape[0] + 1), False, "Iteration limit reached"

    if name == "mgda":
        monkeypatch.setattr(gram_module, "_nnls", failing_nnls)
    elif name == "cagrad":
        # Neither the exact active-set solve nor SLSQP succeeds.
        monkeypatch.setattr(cagrad_module, "_active_set_optimum", lambda *args: None)
        monkeypatch.setattr(cagrad_module, "_slsqp_primal", failing_slsqp)
    else:
        monkeypatch.setattr(nash_module, "_damped_newton", lambda gram, start, steps: start)
    with pytest.raises(RuntimeError, match=r"min-norm solve|worst-case|bargaining condition"):
        weights_of(FACTORIES[name](), random_grads(4, 9, 0))


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("name", "n_tasks"), [("mgda", 2), ("pcgrad", 5), ("gradvac", 5), ("imtl", 5)]
)
def test_closed_form_methods_do_not_sync_on_cuda(name, n_tasks):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    grads = random_grads(n_tasks, 64, 0, dtype=torch.float32).cuda()
    losses = torch.ones(n_tasks, device="cuda")
    mask = all_present(n_tasks).cuda()
    aggregator = FACTORIES[name]()
    aggregator(grads, losses, mask)  # creates the generator, loads the kernels
    torch.cuda.set_sync_debug_mode("error")
    try:
        update = aggregator(grads, losses, mask)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    expected = FACTORIES[name]()(grads.cpu(), losses.cpu(), mask.cpu())
    if name in DETERMINISTIC:
        torch.testing.assert_close(update.cpu(), expected, rtol=1e-4, atol=1e-5)
