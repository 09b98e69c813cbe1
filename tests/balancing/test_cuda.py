"""On a GPU: every step runs without a host sync and matches the CPU (run with -m gpu)."""

import pytest
import torch
from tinymtl import TinyMTL, is_gradient_method, make_batch

import molmtl.balancing as mb

pytestmark = pytest.mark.gpu

# Methods whose step must never sync (scipy-based solvers move their small problem to the host).
SYNC_FREE = [
    "ew",
    "si",
    "gls",
    "uw",
    "dwa",
    "rlw",
    "famo",
    "dbmtl",
    "gradmax",
    "gradnorm",
    "gradmax+log",
]
SYNC_FREE += ["stch", "go4align", "excessmtl", "moco", "moco+log"]


@pytest.fixture
def cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    return torch.device("cuda")


@pytest.mark.parametrize("backend", ["sequential", "batched"])
@pytest.mark.parametrize("name", SYNC_FREE)
def test_step_has_no_host_sync(cuda, name, backend):
    model = TinyMTL().to(cuda)
    options = {"backend": backend} if is_gradient_method(name) else {}
    balancer = mb.get(name, **options, **model.balancer_kwargs())
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    x, y = (t.to(cuda) for t in make_batch())
    mask = torch.tensor([True, False, True], device=cuda)
    balancer.backward(model.losses(x, y), mask)  # first step: lazy state allocation
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            optimizer.zero_grad()
            diagnostics = balancer.backward(model.losses(x, y), mask)
            optimizer.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(diagnostics["weights"]).all()


@pytest.mark.parametrize("name", ["dbmtl", "ew", "imtl+log", "uw"])
def test_cuda_matches_cpu(cuda, name):
    cpu_model, gpu_model = TinyMTL(), TinyMTL().to(cuda)
    cpu_balancer = mb.get(name, **cpu_model.balancer_kwargs())
    gpu_balancer = mb.get(name, **gpu_model.balancer_kwargs())
    for seed in range(3):
        x, y = make_batch(seed=seed)
        cpu_model.zero_grad(set_to_none=True)
        gpu_model.zero_grad(set_to_none=True)
        cpu_balancer.backward(cpu_model.losses(x, y))
        gpu_balancer.backward(gpu_model.losses(x.to(cuda), y.to(cuda)))
        torch.testing.assert_close(
            gpu_model.shared_grad().cpu(), cpu_model.shared_grad(), rtol=1e-4, atol=1e-6
        )
