"""Bad losses and bad shapes give clear errors, never a NaN update."""

import pytest
import torch
from tinymtl import TinyMTL, make_batch

import molmtl.balancing as mb
from molmtl.balancing._validation import LossMonitor

LOG_METHODS = ["dbmtl", "si", "gls", "pcgrad+log", "famo", "dwa"]
ANY_METHODS = ["ew", "gradmax", "uw", "dbmtl"]


def losses_with(model, index, value):
    x, y = make_batch()
    losses = model.losses(x, y)
    replacement = torch.zeros(3)
    replacement[index] = 1.0
    return torch.where(replacement.bool(), torch.tensor(value), losses)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("name", ANY_METHODS)
def test_non_finite_loss_raises_before_any_update(name, value):
    model = TinyMTL()
    balancer = mb.get(name, **model.balancer_kwargs())
    state = balancer.state_dict()
    with pytest.raises(mb.InvalidLossError, match=r"invalid losses at step 1.*finite"):
        balancer.backward(losses_with(model, 1, value))
    assert all(p.grad is None for p in model.parameters())
    torch.testing.assert_close(balancer.state_dict(), state)


@pytest.mark.parametrize("name", LOG_METHODS)
def test_negative_loss_raises_for_methods_that_take_logs(name):
    model = TinyMTL()
    balancer = mb.get(name, **model.balancer_kwargs())
    with pytest.raises(mb.InvalidLossError, match=r">= 0"):
        balancer.backward(losses_with(model, 0, -0.5))
    assert all(p.grad is None for p in model.parameters())


def test_negative_loss_of_masked_task_is_ignored_by_log_methods():
    model = TinyMTL()
    balancer = mb.get("dbmtl", **model.balancer_kwargs())
    balancer.backward(losses_with(model, 0, -0.5), torch.tensor([False, True, True]))
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", ["ew", "gradmax", "uw"])
def test_negative_losses_are_fine_without_logs(name):
    model = TinyMTL()
    mb.get(name, **model.balancer_kwargs()).backward(losses_with(model, 0, -0.5))
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(
    ("make_losses", "mask", "error", "match"),
    [
        (lambda losses: losses[:2], None, ValueError, r"shape \[3\]"),
        (lambda losses: losses[None], None, ValueError, r"shape \[3\]"),
        (lambda losses: losses.sum(), None, ValueError, r"shape \[3\]"),
        (lambda losses: [*losses], None, TypeError, "torch.Tensor"),
        (lambda losses: losses.detach(), None, ValueError, "require grad"),
        (lambda losses: losses, torch.tensor([1, 0, 1]), TypeError, "bool"),
        (lambda losses: losses, [True, False, True], TypeError, "bool"),
        (
            lambda losses: losses,
            torch.tensor([True, False]),
            ValueError,
            r"mask must have shape \[3\]",
        ),
    ],
)
def test_bad_shapes_and_dtypes(make_losses, mask, error, match):
    model = TinyMTL()
    x, y = make_batch()
    balancer = mb.get("dbmtl", **model.balancer_kwargs())
    with pytest.raises(error, match=match):
        balancer.backward(make_losses(model.losses(x, y)), mask)


def test_deferred_flag_raises_later_with_the_first_bad_step():
    """The accelerator path, exercised on CPU tensors: record now, raise at the next check."""
    monitor = LossMonitor("dbmtl")
    good, bad = torch.tensor([1.0, 2.0]), torch.tensor([1.0, float("nan")])
    for values in (good, bad, good):
        monitor._steps += 1
        flag = monitor._record(values, ~torch.isfinite(values).all(), nonnegative=True)
    assert bool(flag)  # sticky: the good step after the bad one is a no-op too
    with pytest.raises(mb.InvalidLossError, match=r"step 2: \[1.0, nan\].*no-ops"):
        monitor.check()


@pytest.mark.gpu
def test_cuda_bad_loss_is_a_no_op_then_raises():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    model = TinyMTL().cuda()
    balancer = mb.get("dbmtl", **model.balancer_kwargs())
    x, y = (t.cuda() for t in make_batch())
    losses = model.losses(x, y) * torch.tensor([1.0, float("nan"), 1.0], device="cuda")
    balancer.backward(losses)
    assert all((p.grad == 0).all() for p in model.parameters())
    torch.cuda.synchronize()
    with pytest.raises(mb.InvalidLossError, match="no-ops"):
        balancer.backward(model.losses(x, y))
