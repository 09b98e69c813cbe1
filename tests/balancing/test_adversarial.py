"""Adversarial inputs for every registered method (issue 12): extreme scales, dtypes, duplicate
parameters, absent tasks, invalid values; nothing lost, nothing hung, no traceback from deep
inside. Properties are drawn by hypothesis (derandomized) over all names in ``available()``."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tinymtl import assert_same_state

import molmtl.balancing as mb
from molmtl.balancing._loss_weighting import masked_softmax
from molmtl.balancing._methods._gram import masked_gram
from molmtl.balancing._numerics import row_norms, scaled_rows
from molmtl.balancing._registry import METHODS as METHODS_REGISTRY
from molmtl.balancing._validation import LossMonitor

METHODS = mb.available()
N_TASKS, N_SHARED = 3, 5  # no state dimension other than the tasks' has size 3
#: methods whose formulas add an absolute 1e-8 (the authors' code): for losses or gradients far
#: below it their true update is below float32's range, so 0 is the right answer there.
ABSOLUTE_EPS = {"dbmtl", "gradmax", "gradmax+log", "go4align", "moco", "moco+log"}
#: methods that draw random numbers (task orders, dropped signs, weights).
RANDOM = {"rlw", "pcgrad", "gradvac", "graddrop"}
SETTINGS = settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class Problem:
    """A shared ``[5]`` vector and one ``[5]`` head per task; task t's loss is ``scale_t`` times
    an O(1) function, so its loss and gradients are of size ``scale_t``."""

    def __init__(self, dtype=torch.float32, n_tasks=N_TASKS, seed=0, order=None) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.shared = torch.nn.Parameter(torch.randn(N_SHARED, generator=generator).to(dtype))
        heads = [torch.randn(N_SHARED, generator=generator).to(dtype) for _ in range(n_tasks)]
        self.order = list(range(n_tasks)) if order is None else order
        self.heads = [torch.nn.Parameter(heads[task]) for task in self.order]

    def kwargs(self) -> dict:
        return {"shared": [self.shared], "task_specific": self.heads, "n_tasks": len(self.heads)}

    def losses(self, scales, dtype=None, step=0) -> torch.Tensor:
        values = []
        for head, task in zip(self.heads, self.order, strict=True):
            hidden = torch.tanh(self.shared * head + 0.1 * step)
            hidden = hidden if dtype is None else hidden.to(dtype)
            values.append(scales[task] * ((hidden - 0.3 * task) ** 2).mean())
        return torch.stack(values)

    def params(self) -> list[torch.Tensor]:
        return [self.shared, *self.heads]

    def zero_grad(self) -> None:
        for param in self.params():
            param.grad = None


def build(name, problem, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "fastest" falling back; not what is tested here
        return mb.get(name, **problem.kwargs(), **options)


def run(balancer, problem, scales, masks, dtype=None) -> list[dict]:
    """One ``backward`` per mask; the diagnostics and gradients of every step."""
    steps = []
    for step, mask in enumerate(masks):
        problem.zero_grad()
        diagnostics = balancer.backward(problem.losses(scales, dtype, step), mask)
        steps.append({**diagnostics, "grads": [p.grad.clone() for p in problem.params()]})
    return steps


scale_exponents = st.tuples(
    st.integers(-30, 30), st.lists(st.integers(-10, 10), min_size=N_TASKS, max_size=N_TASKS)
).map(lambda drawn: [min(30, max(-30, drawn[0] + offset)) for offset in drawn[1]])
masks = st.lists(
    st.one_of(st.none(), st.lists(st.booleans(), min_size=N_TASKS, max_size=N_TASKS)),
    min_size=2,
    max_size=3,
).map(lambda drawn: [None if m is None else torch.tensor(m) for m in drawn])


@pytest.mark.parametrize("name", METHODS)
@SETTINGS
@given(exponents=scale_exponents, step_masks=masks, dtype=st.sampled_from(["float32", "bfloat16"]))
def test_finite_losses_at_any_scale_give_finite_nonzero_updates(name, exponents, step_masks, dtype):
    """Losses and gradients from 1e-30 to 1e30 (float32's and bfloat16's range), spread over
    up to 20 orders of magnitude between tasks: finite gradients in the parameters' dtype, and
    no silent zero update while any task is labelled."""
    dtype = getattr(torch, dtype)
    scales = [10.0**exponent for exponent in exponents]
    problem = Problem(dtype)
    steps = run(build(name, problem), problem, scales, step_masks)
    for mask, step in zip(step_masks, steps, strict=True):
        assert all(g.dtype == dtype and torch.isfinite(g).all() for g in step["grads"])
        assert torch.isfinite(step["weights"]).all()
        labelled = [
            s for s, m in zip(scales, mask if mask is not None else [True] * 3, strict=True) if m
        ]
        tiny = name in ABSOLUTE_EPS and min(labelled, default=1.0) < 1e-4
        if labelled and not tiny:
            assert step["grads"][0].abs().sum() > 0, (name, exponents, mask)


SCALE_EQUIVARIANT = ["pcgrad", "imtl", "mgda", "upgrad", "dualproj", "alignedmtl", "cagrad",
                     "config", "sdmgrad", "graddrop"]  # fmt: skip


@pytest.mark.parametrize("name", SCALE_EQUIVARIANT)
@pytest.mark.parametrize("exponent", [-100, -60, 60, 67])
def test_gradient_methods_are_scale_free(name, exponent):
    """Issue 12: pcgrad and imtl gave NaN from finite losses near 1e20 (Gram products overflowed
    in float32), alignedmtl a zero update for tiny gradients (their squares underflowed to 0).
    Scaling every loss by 2^k scales the update by 2^k for these scale-equivariant methods."""
    factor = 2.0**exponent
    options = {"seed": 0} if name in RANDOM else {}
    updates = []
    for scale in (1.0, factor):
        problem = Problem()
        run(build(name, problem, **options), problem, [scale] * 3, [None])
        updates.append(problem.shared.grad.double())
    assert torch.isfinite(updates[1]).all() and updates[1].abs().sum() > 0
    torch.testing.assert_close(updates[1] / factor, updates[0], rtol=1e-5, atol=1e-7)


def test_scaled_products_are_bit_for_bit_the_plain_ones():
    """Powers of two scale exactly: the scaled norms and Gram matrix equal the plain ones where
    those neither overflow nor underflow, so switching to them changes nothing there."""
    grads = torch.randn(4, 300, generator=torch.Generator().manual_seed(3)) * 1e-3
    unit_rows, scales = scaled_rows(grads)
    assert torch.equal(unit_rows.norm(dim=1) * scales.float(), grads.norm(dim=1))
    plain = (grads @ grads.T).double()
    assert torch.equal((unit_rows @ unit_rows.T).double() * scales[:, None] * scales, plain)
    # One overflowing row leaves the other rows' entries as they were.
    mixed = torch.cat([grads, grads[:1] * 1e25])
    gram = masked_gram(mixed, torch.ones(5, dtype=torch.bool))
    assert torch.equal(gram[:4, :4], (plain + plain.T) / 2)
    assert torch.isfinite(gram).all() and torch.isfinite(row_norms(mixed)).all()


PARAM_AND_LOSS_DTYPES = [
    (torch.float32, torch.float64),
    (torch.float32, torch.bfloat16),
    (torch.float64, torch.float64),
    (torch.float64, torch.float32),
    (torch.bfloat16, torch.bfloat16),
    (torch.bfloat16, torch.float32),
]


@pytest.mark.parametrize("name", METHODS)
def test_every_dtype_of_losses_and_parameters(name):
    """Issue 12: float64 and bfloat16 losses crashed uw and famo. Gradients come back in the
    parameters' dtype whatever the losses' dtype."""
    for param_dtype, loss_dtype in PARAM_AND_LOSS_DTYPES:
        problem = Problem(param_dtype)
        balancer = build(name, problem)
        mask = torch.tensor([True, False, True])
        steps = run(balancer, problem, [1.0, 10.0, 100.0], [None, mask, None], loss_dtype)
        for step in steps:
            for grad in step["grads"]:
                assert grad.dtype == param_dtype and torch.isfinite(grad).all(), (
                    param_dtype,
                    loss_dtype,
                )
        balancer.end_epoch()


@pytest.mark.parametrize("name", METHODS)
def test_duplicate_parameters_count_once(name):
    """Issue 12: a shared parameter listed twice got a doubled gradient."""
    results = []
    for duplicated in (False, True):
        torch.manual_seed(0)
        problem = Problem()
        kwargs = problem.kwargs()
        if duplicated:
            kwargs["shared"] = [problem.shared, problem.shared, problem.shared]
            kwargs["task_specific"] = [*problem.heads, problem.heads[0]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            balancer = mb.get(name, **kwargs)
        results.append(run(balancer, problem, [1.0, 3.0, 0.5], [None, None]))
    for plain, duplicated in zip(*results, strict=True):
        assert_same_state(duplicated["grads"], plain["grads"])


def test_parameters_that_are_not_leaves_or_a_bare_tensor_are_refused():
    problem = Problem()
    with pytest.raises(TypeError, match="iterable of tensors"):
        mb.get("ew", shared=problem.shared, n_tasks=3)
    with pytest.raises(ValueError, match="leaf tensors"):
        mb.get("ew", shared=[problem.shared * 2], n_tasks=3)


def _task_slices(state, task: int, path=()):
    """Every ``(path, slice)`` of ``state`` along a dimension of size T at index ``task``."""
    if isinstance(state, torch.Tensor):
        for dim, size in enumerate(state.shape):
            if size == N_TASKS:
                yield (*path, dim), state.select(dim, task).clone()
    elif isinstance(state, dict):
        for key, value in state.items():
            # Which tasks the last batch labelled is a record of that batch, not learned state.
            if key != "previous_mask_":
                yield from _task_slices(value, task, (*path, key))
    elif isinstance(state, list | tuple):
        for index, value in enumerate(state):
            yield from _task_slices(value, task, (*path, index))


@pytest.mark.parametrize("name", METHODS)
@settings(SETTINGS, max_examples=4)
@given(
    present=st.lists(st.booleans(), min_size=N_TASKS, max_size=N_TASKS).filter(
        lambda flags: not all(flags)
    ),
    warm_up=st.integers(1, 3),
)
def test_absent_task_state_is_left_alone(name, present, warm_up):
    """Issue 12: with uw and gradnorm a masked-out task's weight still moved (Adam's momentum,
    the softmax's coupling). Every per-task entry of a method's state (values, Adam moments,
    buffers, targets) of a task without labels is bit for bit what it was."""
    problem = Problem()
    balancer = build(name, problem)
    run(balancer, problem, [1.0, 2.0, 0.5], [None] * warm_up)
    absent = [task for task, flag in enumerate(present) if not flag]
    before = {task: dict(_task_slices(balancer.state_dict(), task)) for task in absent}
    mask = torch.tensor(present)
    steps = run(balancer, problem, [1.0, 2.0, 0.5], [mask, mask])
    for task in absent:
        after = dict(_task_slices(balancer.state_dict(), task))
        assert before[task].keys() <= after.keys()
        for path, value in after.items():
            # State created in these steps (Adam's moments at its first step) starts at 0.
            expected = before[task].get(path, torch.zeros_like(value))
            torch.testing.assert_close(value, expected, rtol=0, atol=0, equal_nan=True)
        assert all(step["weights"][task] == 0 for step in steps)


@pytest.mark.parametrize("name", METHODS)
def test_runs_are_deterministic(name):
    results = []
    for _ in range(2):
        torch.manual_seed(7)
        problem = Problem()
        results.append(run(build(name, problem), problem, [1.0, 5.0, 0.2], [None, None]))
    assert_same_state(results[1], results[0])


SYMMETRIC = [name for name in METHODS if name not in RANDOM and name.split("+")[0] not in RANDOM]


@pytest.mark.parametrize("name", SYMMETRIC)
def test_permuting_the_tasks_permutes_the_weights(name):
    order = [2, 0, 1]
    results = []
    for permutation in (None, order):
        problem = Problem(torch.float64, order=permutation)
        results.append(run(build(name, problem), problem, [1.0, 4.0, 0.25], [None, None]))
    for plain, permuted in zip(*results, strict=True):
        torch.testing.assert_close(
            permuted["weights"], plain["weights"][order], rtol=1e-6, atol=1e-9
        )
        torch.testing.assert_close(permuted["grads"][0], plain["grads"][0], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", METHODS)
def test_a_task_with_a_zero_gradient(name):
    """A task whose loss does not depend on the shared parameters: finite, and the others still
    get their update."""
    problem = Problem()
    balancer = build(name, problem)
    for step in range(2):
        problem.zero_grad()
        losses = problem.losses([1.0, 2.0, 0.5], step=step)
        constant = (problem.heads[2] ** 2).mean() + 0.1  # no path to the shared parameters
        balancer.backward(torch.stack([losses[0], losses[1], constant]))
        assert all(torch.isfinite(p.grad).all() for p in problem.params())
        if name.split("+")[0] != "mgda":  # 0 is in the convex hull: MGDA's true answer is 0
            assert problem.shared.grad.abs().sum() > 0


@pytest.mark.parametrize("name", [name for name in METHODS if mb.is_gradient_method(name)])
def test_asking_for_weights_has_no_side_effects(name):
    problem = Problem()
    balancer = build(name, problem)
    run(balancer, problem, [1.0, 2.0, 0.5], [None, torch.tensor([True, False, True])])
    grads = torch.randn(N_TASKS, N_SHARED, generator=torch.Generator().manual_seed(1))
    losses, mask = torch.tensor([1.0, 2.0, 0.5]), torch.ones(N_TASKS, dtype=torch.bool)
    state = balancer.state_dict()
    first = balancer.aggregator.weights(grads, losses, mask)
    second = balancer.aggregator.weights(grads, losses, mask)
    assert_same_state(balancer.state_dict(), state)
    assert torch.equal(first, second)
    assert torch.equal(balancer.aggregator.aggregate(grads, losses, mask)[1], first)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_invalid_loss_names_the_task(name, value):
    problem = Problem()
    balancer = build(name, problem)
    losses = problem.losses([1.0, 1.0, 1.0]) * torch.tensor([1.0, 1.0, value])
    with pytest.raises(mb.InvalidLossError, match=r"invalid losses at step 1: .*\(task 2\)"):
        balancer.backward(losses)
    assert all(p.grad is None for p in problem.params())


@pytest.mark.parametrize("name", METHODS)
def test_non_finite_gradient_of_a_finite_loss_names_the_task(name):
    """sqrt at 0 has an infinite derivative: a finite loss, an infinite gradient."""
    problem = Problem()
    balancer = build(name, problem)
    losses = problem.losses([1.0, 1.0, 1.0])
    losses = torch.stack([losses[0], (problem.shared[0] * 0).sqrt() + losses[1], losses[2]])
    with pytest.raises(mb.InvalidGradientError, match=r"non-finite gradient at step 1 for task"):
        balancer.backward(losses)
    assert all(p.grad is None for p in problem.params())


def test_masked_softmax_of_very_negative_logits_is_not_zero():
    """Found by the property tests: logits below -1e30 (MoCo's step with losses of 1e20) gave
    all-zero weights, and so a silent zero update."""
    weights = masked_softmax(
        torch.tensor([-3e38, -2e38, 0.0]) - 1e38, torch.tensor([True, True, False])
    )
    assert torch.equal(weights, torch.tensor([0.0, 1.0, 0.0]))
    assert torch.equal(
        masked_softmax(torch.zeros(2), torch.zeros(2, dtype=torch.bool)), torch.zeros(2)
    )


def test_deferred_gradient_flag_names_the_task():
    """The accelerator path, exercised on CPU tensors: record now, raise at the next check."""
    monitor = LossMonitor("pcgrad")
    monitor._steps = 4
    finite_rows = torch.tensor([True, False, True])
    flag = monitor._record(torch.ones(3), ~finite_rows.all(), False, ~finite_rows)
    assert bool(flag)
    with pytest.raises(mb.InvalidGradientError, match=r"step 4 for task 1 .*no-ops"):
        monitor.check()


class _Broken(mb.Aggregator):
    def weights(self, grads, losses, mask):
        return torch.full_like(losses, float("nan"))


def test_a_non_finite_update_from_finite_gradients_raises():
    problem = Problem()
    balancer = mb.GradientBalancer(**problem.kwargs(), aggregator=_Broken())
    with pytest.raises(RuntimeError, match="non-finite update from finite gradients"):
        balancer.backward(problem.losses([1.0, 1.0, 1.0]))
    assert all(p.grad is None for p in problem.params())


def _float_options(name: str) -> list[str]:
    """The options of ``name`` whose default is a float (and the log transform's ``eps``)."""
    method = METHODS_REGISTRY.get(name)
    parameters = inspect.signature(method.__init__).parameters
    floats = [key for key, p in parameters.items() if isinstance(p.default, float)]
    return floats + (["eps"] if name.endswith("+log") else [])


@pytest.mark.parametrize("name", [name for name in METHODS if _float_options(name)])
def test_non_finite_options_are_refused(name):
    """Found by the adversarial pass: NaN or infinite options (lr, temperature, mu, c, ...) were
    accepted and surfaced steps later as NaN weights or a traceback from scipy."""
    for option in _float_options(name):
        for value in (float("nan"), float("inf"), -float("inf")):
            with pytest.raises(ValueError, match=rf"option {option} must be a finite number"):
                mb.get(name, **Problem().kwargs(), **{option: value})


def test_fairgrad_solves_gradients_40_orders_of_magnitude_apart():
    """Found by the adversarial pass: with norms 1e-21, 0.2 and 3e19 FairGrad's line search
    stopped at an absolute step of 1e-12 and raised; the condition now holds (``_check``)."""
    grads = torch.randn(3, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grads = grads * torch.tensor([1e-21, 0.2, 3e19], dtype=torch.float64)[:, None]
    weights = mb.FairGrad().weights(grads, torch.ones(3), torch.ones(3, dtype=torch.bool))
    assert torch.isfinite(weights).all() and (weights > 0).all()
