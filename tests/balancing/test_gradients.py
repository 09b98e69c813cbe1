import pytest
import torch
from tinymtl import TinyMTL, make_batch

from molmtl.balancing import BACKENDS, _gradients
from molmtl.balancing._gradients import PerTaskGradients, accumulate_grads, unflatten


def reference_gradients(model, losses):
    """One autograd call per (task, parameter): slow and obviously right."""
    shared = list(model.trunk.parameters())
    rows = []
    for loss in losses:
        row = []
        for param in shared:
            (grad,) = torch.autograd.grad(loss, param, retain_graph=True, allow_unused=True)
            row.append(torch.zeros_like(param) if grad is None else grad)
        rows.append(torch.cat([g.reshape(-1) for g in row]))
    task_grads = []
    for param in model.heads.parameters():
        total = torch.zeros_like(param)
        for loss in losses:
            (grad,) = torch.autograd.grad(loss, param, retain_graph=True, allow_unused=True)
            if grad is not None:
                total += grad
        task_grads.append(total)
    return torch.stack(rows), task_grads


@pytest.mark.parametrize("backend", [*BACKENDS, "auto", "fastest"])
@pytest.mark.parametrize(("n_tasks", "seed"), [(1, 0), (2, 1), (4, 2)])
def test_backends_match_reference(backend, n_tasks, seed):
    model = TinyMTL(n_tasks=n_tasks, seed=seed)
    x, y = make_batch(n_tasks, seed=seed)
    expected_shared, expected_task = reference_gradients(model, model.losses(x, y))
    shared, task = PerTaskGradients(backend)(
        model.losses(x, y), list(model.trunk.parameters()), list(model.heads.parameters())
    )
    assert shared.shape == (n_tasks, sum(p.numel() for p in model.trunk.parameters()))
    torch.testing.assert_close(shared, expected_shared)
    for got, expected in zip(task, expected_task, strict=True):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_unused_shared_parameter_gets_zero_rows(backend):
    model = TinyMTL(n_tasks=2)
    unused = torch.nn.Parameter(torch.ones(3))
    x, y = make_batch(2)
    shared, _ = BACKENDS[backend](model.losses(x, y), [*model.trunk.parameters(), unused], [])
    assert (shared[:, -3:] == 0).all()


def fake_clock(monkeypatch, batched_seconds: float, sequential_seconds: float) -> None:
    """Make calibration see fixed durations: the clock is read before and after each backend."""
    durations = iter([batched_seconds, sequential_seconds] * 100)
    readings = []

    def clock(device):
        if len(readings) % 2 == 0:
            readings.append(0.0)
        else:
            readings.append(next(durations))
        return readings[-1]

    monkeypatch.setattr(_gradients, "_clock", clock)


@pytest.mark.parametrize(
    ("batched_seconds", "sequential_seconds", "expected"),
    [(1.0, 2.0, "batched"), (2.0, 1.0, "sequential")],
)
def test_fastest_keeps_the_faster_backend(
    monkeypatch, batched_seconds, sequential_seconds, expected
):
    fake_clock(monkeypatch, batched_seconds, sequential_seconds)
    model = TinyMTL()
    args = (list(model.trunk.parameters()), list(model.heads.parameters()))
    gradients = PerTaskGradients("fastest")
    for step in range(_gradients.CALIBRATION_STEPS + 2):
        x, y = make_batch(seed=step)
        shared, _ = gradients(model.losses(x, y), *args)
        # Calibration steps return the sequential result; later steps the chosen backend's.
        expected_shared, _ = reference_gradients(model, model.losses(x, y))
        torch.testing.assert_close(shared, expected_shared)
        chosen = gradients.chosen_
        assert chosen == (expected if step >= _gradients.CALIBRATION_STEPS - 1 else None)
    assert len(gradients.timings_["sequential"]) == _gradients.CALIBRATION_STEPS


def test_fastest_settles_on_sequential_when_batching_fails(monkeypatch):
    def failing(*args, **kwargs):
        raise RuntimeError("vmap: no batching rule")

    monkeypatch.setattr(_gradients, "batched_gradients", failing)
    model = TinyMTL()
    x, y = make_batch()
    gradients = PerTaskGradients("fastest")
    args = (list(model.trunk.parameters()), list(model.heads.parameters()))
    with pytest.warns(RuntimeWarning, match="sequential"):
        shared, _ = gradients(model.losses(x, y), *args)
    expected, _ = reference_gradients(model, model.losses(x, y))
    torch.testing.assert_close(shared, expected)
    assert gradients.chosen_ == "sequential"


def test_auto_is_deterministic_sequential_on_cpu_and_measured_on_cuda():
    gradients = PerTaskGradients("auto")
    assert gradients.resolve(torch.device("cpu")) == "sequential"
    assert gradients.resolve(torch.device("cuda")) == "fastest"


def test_explicit_batched_backend_does_not_fall_back(monkeypatch):
    def failing(*args, **kwargs):
        raise RuntimeError("vmap: no batching rule")

    monkeypatch.setitem(_gradients.BACKENDS, "batched", failing)
    model = TinyMTL()
    x, y = make_batch()
    with pytest.raises(RuntimeError, match="batching rule"):
        PerTaskGradients("batched")(model.losses(x, y), list(model.trunk.parameters()), [])


def test_accumulate_adds_like_backward_and_zeroes_bad_steps():
    params = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))]
    params[1].grad = torch.ones(2)
    accumulate_grads(params, [torch.full((2,), 2.0), torch.full((2,), 3.0)], bad=None)
    assert params[0].grad.tolist() == [2.0, 2.0] and params[1].grad.tolist() == [4.0, 4.0]
    nan = torch.full((2,), float("nan"))
    accumulate_grads(params, [nan, nan], bad=torch.tensor(True))
    assert params[0].grad.tolist() == [2.0, 2.0] and params[1].grad.tolist() == [4.0, 4.0]


def test_unflatten_gives_views_shaped_like_parameters():
    like = [torch.zeros(2, 3), torch.zeros(4)]
    vector = torch.arange(10.0)
    parts = unflatten(vector, like)
    assert [p.shape for p in parts] == [(2, 3), (4,)]
    assert parts[1].tolist() == [6.0, 7.0, 8.0, 9.0]
    assert parts[0].data_ptr() == vector.data_ptr()


def test_update_never_aliases_the_workspace():
    """An aggregator may return a view of its input; .grad must still survive the next step."""
    from molmtl.balancing import Aggregator, GradientBalancer

    class FirstTask(Aggregator):
        def weights(self, grads, losses, mask):
            raise NotImplementedError

        def aggregate(self, grads, losses, mask):
            return grads[0], torch.eye(len(grads))[0]

    model = TinyMTL()
    balancer = GradientBalancer(
        **model.balancer_kwargs(), aggregator=FirstTask(), backend="sequential"
    )
    x, y = make_batch()
    balancer.backward(model.losses(x, y))
    first = model.shared_grad().clone()
    trunk_grads = [p.grad for p in model.trunk.parameters()]
    model.zero_grad(set_to_none=True)
    balancer.backward(model.losses(*make_batch(seed=1)))  # overwrites the workspace
    torch.testing.assert_close(torch.cat([g.reshape(-1) for g in trunk_grads]), first)
