import pytest
import torch
from tinymtl import TinyMTL, make_batch, require_method

import molmtl.balancing as mb

REQUIRED = [
    "dbmtl", "gradmax", "ew", "si", "gls", "uw", "dwa", "rlw", "famo",
    "gradnorm", "mgda", "pcgrad", "gradvac", "cagrad", "imtl", "nashmtl", "alignedmtl",
]  # fmt: skip


def test_available_lists_every_method_and_log_variants():
    names = mb.available()
    assert set(REQUIRED) <= set(names)
    assert "pcgrad+log" in names and "gradmax+log" in names
    assert "dbmtl+log" not in names and "ew+log" not in names
    assert len(names) == len(set(names))


@pytest.mark.parametrize("name", ["nope", "dbmtl+log", "ew+log", "pcgrad+sqrt", "", "DBMTL"])
def test_unknown_name_lists_valid_ones(name):
    model = TinyMTL()
    with pytest.raises(ValueError, match=r"valid:.*'dbmtl'"):
        mb.get(name, **model.balancer_kwargs())


@pytest.mark.parametrize("name", mb.available())
def test_unknown_option_lists_valid_ones(name):
    require_method(name)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['bogus'\].*valid"):
        mb.get(name, bogus=1, **TinyMTL().balancer_kwargs())


@pytest.mark.parametrize(
    ("name", "options", "attribute", "value"),
    [
        ("dbmtl", {"beta": 0.5, "beta_sigma": 0.1}, "aggregator.beta", 0.5),
        ("dbmtl", {"eps": 1e-4}, "eps", 1e-4),
        ("pcgrad+log", {"eps": 1e-3}, "eps", 1e-3),
        ("gradmax", {"backend": "batched"}, "gradients.backend", "batched"),
        ("gradnorm", {"alpha": 0.5}, "aggregator.alpha", 0.5),
        ("dwa", {"temperature": 3.0}, "temperature", 3.0),
    ],
)
def test_options_reach_the_method(name, options, attribute, value):
    balancer = mb.get(name, **options, **TinyMTL().balancer_kwargs())
    target = balancer
    for part in attribute.split("."):
        target = getattr(target, part)
    assert target == value


@pytest.mark.parametrize("name", ["gradmax", "ew"])
def test_eps_only_with_log_transform(name):
    with pytest.raises(ValueError, match="unknown option"):
        mb.get(name, eps=1e-3, **TinyMTL().balancer_kwargs())


@pytest.mark.parametrize("name", mb.available())
def test_every_method_runs_one_step(name):
    require_method(name)
    model = TinyMTL()
    x, y = make_batch()
    balancer = mb.get(name, **model.balancer_kwargs())
    assert balancer.name == name
    diagnostics = balancer.backward(model.losses(x, y))
    assert set(diagnostics) == {"weights", "grad_norms"}
    assert diagnostics["weights"].shape == (3,) and diagnostics["grad_norms"].shape == (3,)
    assert torch.isfinite(diagnostics["weights"]).all()
    for param in model.parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all()
    assert model.shared_grad().abs().sum() > 0 and model.task_grad().abs().sum() > 0
    torch.optim.SGD(model.parameters(), lr=1e-3).step()
    balancer.end_epoch()


def test_gradient_methods_report_norms_loss_weighting_does_not():
    model = TinyMTL()
    x, y = make_batch()
    assert torch.isnan(
        mb.get("ew", **model.balancer_kwargs()).backward(model.losses(x, y))["grad_norms"]
    ).all()
    assert (
        mb.get("gradmax", **model.balancer_kwargs()).backward(model.losses(x, y))["grad_norms"] > 0
    ).all()


def test_construction_errors_are_clear():
    model = TinyMTL()
    with pytest.raises(ValueError, match="n_tasks"):
        mb.get("ew", shared=model.trunk.parameters(), n_tasks=0)
    with pytest.raises(ValueError, match="both shared and task_specific"):
        mb.get("ew", shared=model.parameters(), task_specific=model.heads.parameters(), n_tasks=3)
    with pytest.raises(ValueError, match="at least one parameter"):
        mb.get("ew", shared=[], n_tasks=3)
    with pytest.raises(ValueError, match="backend"):
        mb.get("dbmtl", backend="magic", **model.balancer_kwargs())


def test_missing_method_module_is_a_clear_import_error(monkeypatch):
    from molmtl.balancing import _registry

    monkeypatch.setitem(_registry.METHODS, "ghost", _registry.Method("ghost:Ghost", "gradient"))
    assert "ghost" in mb.available() and "ghost+log" in mb.available()
    with pytest.raises(ImportError, match="ghost:Ghost cannot be loaded"):
        mb.get("ghost", **TinyMTL().balancer_kwargs())
