"""The registry of balancing methods: one line per method, classes imported on first use."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import torch

from molmtl.balancing._base import Balancer
from molmtl.balancing._gradient_balancer import GradientBalancer

_PACKAGE = "molmtl.balancing._methods"
_LOG_SUFFIX = "+log"
#: options of GradientBalancer that a gradient method accepts besides its aggregator's.
_GRADIENT_OPTIONS = ("backend", "distributed", "process_group")
_LOG_OPTIONS = ("eps",)


@dataclass(frozen=True)
class Method:
    """Where a method lives (``"module:Class"`` under ``molmtl.balancing._methods``) and how it runs.

    ``kind`` is ``"loss"`` for a :class:`Balancer` subclass built directly, ``"gradient"`` for
    an :class:`Aggregator` wrapped in a :class:`GradientBalancer` (with the log transform if
    ``log_transform``).
    """

    target: str
    kind: str
    log_transform: bool = False

    @property
    def module(self) -> str:
        return f"{_PACKAGE}.{self.target.partition(':')[0]}"

    def load(self) -> type:
        module, _, name = self.target.partition(":")
        try:
            return getattr(import_module(f"{_PACKAGE}.{module}"), name)
        except (ImportError, AttributeError) as error:
            raise ImportError(
                f"balancing method class {self.target} cannot be loaded: {error}"
            ) from error


METHODS: dict[str, Method] = {
    "ew": Method("ew:EqualWeighting", "loss"),
    "si": Method("si:ScaleInvariant", "loss"),
    "gls": Method("gls:GeometricLoss", "loss"),
    "uw": Method("uw:UncertaintyWeighting", "loss"),
    "dwa": Method("dwa:DynamicWeightAverage", "loss"),
    "rlw": Method("rlw:RandomLossWeighting", "loss"),
    "famo": Method("famo:FAMO", "loss"),
    "dbmtl": Method("dbmtl:GradMax", "gradient", log_transform=True),
    "gradmax": Method("dbmtl:GradMax", "gradient"),
    "gradnorm": Method("gradnorm:GradNorm", "gradient"),
    "mgda": Method("mgda:MGDA", "gradient"),
    "pcgrad": Method("pcgrad:PCGrad", "gradient"),
    "gradvac": Method("gradvac:GradVac", "gradient"),
    "cagrad": Method("cagrad:CAGrad", "gradient"),
    "imtl": Method("imtl:IMTL", "gradient"),
    "nashmtl": Method("nashmtl:NashMTL", "gradient"),
    "alignedmtl": Method("alignedmtl:AlignedMTL", "gradient"),
}


def available() -> list[str]:
    """Names accepted by :func:`get`: every method, then ``"<gradient method>+log"`` variants."""
    log_variants = [
        name + _LOG_SUFFIX
        for name, method in METHODS.items()
        if method.kind == "gradient" and not method.log_transform
    ]
    return [*METHODS, *log_variants]


def _resolve(name: str) -> tuple[Method, bool]:
    """The registry entry of ``name`` and whether a ``+log`` suffix asks for the log transform."""
    if not isinstance(name, str) or name not in available():
        raise ValueError(f"unknown balancing method {name!r}; valid: {available()}")
    base, plus, _ = name.partition("+")
    return METHODS[base], bool(plus)


def _init_options(cls: type, skip: Iterable[str]) -> dict[str, inspect.Parameter]:
    parameters = inspect.signature(cls.__init__).parameters
    return {
        key: parameter
        for key, parameter in parameters.items()
        if key not in {"self", *skip}
        and parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    }


def _check_options(name: str, given: dict[str, Any], valid: Iterable[str]) -> None:
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for balancing method {name!r}; valid: {sorted(valid)}"
        )


def get(
    name: str,
    *,
    shared: Iterable[torch.nn.Parameter],
    task_specific: Iterable[torch.nn.Parameter] | None = None,
    n_tasks: int,
    **options: Any,
) -> Balancer:
    """Build the balancer registered as ``name`` (see :func:`available`).

    Args:
        name: a method name, e.g. ``"dbmtl"``, ``"ew"``, ``"pcgrad+log"``.
        shared: parameters shared by all tasks.
        task_specific: parameters belonging to one task each (heads).
        n_tasks: the number of tasks T.
        **options: the method's options (its published defaults otherwise), plus ``backend``,
            ``distributed`` and ``process_group`` for gradient methods (see
            :class:`GradientBalancer`) and ``eps`` for those with the log transform.

    Raises:
        ValueError: unknown ``name`` or option, listing the valid ones.
    """
    method, log_suffix = _resolve(name)
    cls = method.load()
    if method.kind == "loss":
        _check_options(name, options, _init_options(cls, {"shared", "task_specific", "n_tasks"}))
        balancer = cls(shared, task_specific, n_tasks=n_tasks, **options)
    else:
        log_transform = method.log_transform or log_suffix
        aggregator_options = _init_options(cls, {"n_tasks"})
        own_options = _GRADIENT_OPTIONS + (_LOG_OPTIONS if log_transform else ())
        _check_options(name, options, [*aggregator_options, *own_options])
        if "n_tasks" in inspect.signature(cls.__init__).parameters:
            options["n_tasks"] = n_tasks
        balancer_options = {key: options.pop(key) for key in own_options if key in options}
        balancer = GradientBalancer(
            shared,
            task_specific,
            n_tasks=n_tasks,
            aggregator=cls(**options),
            log_transform=log_transform,
            **balancer_options,
        )
    balancer.name = name
    return balancer
