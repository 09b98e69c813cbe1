import pytest
import torch
from tinymtl import TinyMTL, assert_same_state, make_batch

import molmtl.balancing as mb
from molmtl.balancing import _registry

REQUIRED = [
    "dbmtl", "gradmax", "ew", "si", "gls", "uw", "dwa", "rlw", "famo",
    "gradnorm", "mgda", "pcgrad", "gradvac", "cagrad", "imtl", "nashmtl", "alignedmtl",
    "fairgrad", "upgrad", "dualproj", "config", "graddrop",
    "stch", "go4align", "excessmtl", "moco", "sdmgrad",
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
    entries = _registry.METHODS._entries
    monkeypatch.setitem(entries, "ghost", "molmtl.balancing._methods.ghost:Ghost")
    assert "ghost" in mb.available()
    with pytest.raises(ImportError, match=r"'ghost' cannot be loaded.*_methods\.ghost"):
        mb.get("ghost", **TinyMTL().balancer_kwargs())


#: the public class behind every name: a Balancer built as it is, or the Aggregator that a
#: GradientBalancer runs (with the log transform for the ``+log`` names).
BALANCER_CLASSES = {
    "ew": mb.EqualWeighting,
    "si": mb.ScaleInvariant,
    "gls": mb.GeometricLoss,
    "uw": mb.UncertaintyWeighting,
    "dwa": mb.DynamicWeightAverage,
    "rlw": mb.RandomLossWeighting,
    "famo": mb.FAMO,
    "dbmtl": mb.DBMTL,
    "stch": mb.STCH,
    "go4align": mb.GO4Align,
}
AGGREGATOR_CLASSES = {
    "gradmax": mb.GradMax,
    "gradnorm": mb.GradNorm,
    "mgda": mb.MGDA,
    "pcgrad": mb.PCGrad,
    "gradvac": mb.GradVac,
    "cagrad": mb.CAGrad,
    "imtl": mb.IMTL,
    "nashmtl": mb.NashMTL,
    "alignedmtl": mb.AlignedMTL,
    "fairgrad": mb.FairGrad,
    "upgrad": mb.UPGrad,
    "dualproj": mb.DualProj,
    "config": mb.ConFIG,
    "graddrop": mb.GradDrop,
    "excessmtl": mb.ExcessMTL,
    "moco": mb.MoCo,
    "sdmgrad": mb.SDMGrad,
}


def by_class(name, model):
    base, plus, _ = name.partition("+")
    if base in BALANCER_CLASSES:
        return BALANCER_CLASSES[base](**model.balancer_kwargs())
    return mb.GradientBalancer(
        **model.balancer_kwargs(), aggregator=AGGREGATOR_CLASSES[base](), log_transform=bool(plus)
    )


def test_every_name_has_a_public_class():
    names = [*BALANCER_CLASSES, *AGGREGATOR_CLASSES]
    assert mb.available() == [*names, *(name + "+log" for name in AGGREGATOR_CLASSES)]
    for cls in [*BALANCER_CLASSES.values(), *AGGREGATOR_CLASSES.values()]:
        assert cls.__name__ in mb.__all__ and getattr(mb, cls.__name__) is cls


@pytest.mark.parametrize("name", mb.available())
def test_get_builds_what_the_class_builds(name):
    # TinyMTL seeds torch's global RNG, from which rlw, pcgrad and gradvac draw their seeds.
    named_model = TinyMTL()
    named = mb.get(name, **named_model.balancer_kwargs())
    class_model = TinyMTL()
    built = by_class(name, class_model)
    assert type(named) is type(built)
    if isinstance(built, mb.GradientBalancer):
        assert type(named.aggregator) is type(built.aggregator)
        assert named.log_transform == built.log_transform
    masks = [None, torch.tensor([True, False, True]), None]
    for step, mask in enumerate(masks):
        x, y = make_batch(seed=step)
        for model, balancer in [(named_model, named), (class_model, built)]:
            model.zero_grad(set_to_none=True)
            balancer.backward(model.losses(x, y), mask)
        for a, b in zip(named_model.parameters(), class_model.parameters(), strict=True):
            assert torch.equal(a.grad, b.grad)
    named.end_epoch()
    built.end_epoch()
    assert_same_state(built.state_dict(), named.state_dict())
