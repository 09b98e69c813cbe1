"""``get``: a balancer from a method's name and options."""

from __future__ import annotations

import math
from typing import Any

from molmtl.balancing._base import Aggregator, Balancer, Parameters
from molmtl.balancing._gradient_balancer import GradientBalancer
from molmtl.balancing._registry import LOG_SUFFIX, METHODS, available

#: constructor arguments of a Balancer that ``get`` fills itself.
_BALANCER_ARGUMENTS = ("shared", "task_specific", "n_tasks")
#: options of GradientBalancer that a gradient method accepts besides its aggregator's.
_GRADIENT_OPTIONS = ("backend", "distributed", "process_group")
_LOG_OPTIONS = ("eps",)


def get(
    name: str,
    *,
    shared: Parameters,
    task_specific: Parameters | None = None,
    n_tasks: int,
    **options: Any,
) -> Balancer:
    """Build the balancer registered as ``name`` (see :func:`available`).

    ``get("dbmtl", ...)`` equals ``DBMTL(...)``, ``get("ew", ...)`` equals
    ``EqualWeighting(...)``; a gradient method such as ``get("pcgrad+log", ...)`` equals
    ``GradientBalancer(..., aggregator=PCGrad(...), log_transform=True)``. The balancer's
    :attr:`~Balancer.name` (used in messages) is ``name``.

    Args:
        name: a method name, e.g. ``"dbmtl"``, ``"ew"``, ``"pcgrad+log"``.
        shared: parameters shared by all tasks.
        task_specific: parameters belonging to one task each (heads).
        n_tasks: the number of tasks T.
        **options: the method's options (its published defaults otherwise), plus ``backend``,
            ``distributed`` and ``process_group`` for gradient methods (see
            :class:`GradientBalancer`) and ``eps`` for those with the log transform.

    Raises:
        ValueError: unknown ``name`` or option, listing the valid ones; a NaN or infinite
            option.
        ImportError: the method's module cannot be imported.
    """
    method = _load(name)
    _check_finite(name, options)
    if issubclass(method, Aggregator):
        balancer = _gradient_balancer(name, method, shared, task_specific, n_tasks, options)
    else:
        METHODS.check_options(name, options, METHODS.options(name, skip=_BALANCER_ARGUMENTS))
        balancer = method(shared, task_specific, n_tasks=n_tasks, **options)
    balancer.name = name
    return balancer


def is_gradient_method(name: str) -> bool:
    """Whether ``name`` is a gradient method (a :class:`GradientBalancer`, which takes
    ``backend``, ``distributed`` and ``process_group``) rather than a loss-weighting one."""
    return issubclass(_load(name), (Aggregator, GradientBalancer))


def _check_finite(name: str, options: dict[str, Any]) -> None:
    """Refuse NaN and ±inf options: none is meaningful, and each would surface steps later as
    NaN weights (``max_norm=0``, not inf, disables clipping)."""
    for key, value in options.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name}: option {key} must be a finite number, got {value}")


def _load(name: str) -> type:
    """The class registered as ``name``, with errors that say what went wrong."""
    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"unknown balancing method {name!r}; valid: {available()}")
    try:
        return METHODS.get(name)
    except (ImportError, AttributeError) as error:
        raise ImportError(f"balancing method {name!r} cannot be loaded: {error}") from error


def _gradient_balancer(
    name: str,
    aggregator: type[Aggregator],
    shared: Parameters,
    task_specific: Parameters | None,
    n_tasks: int,
    options: dict[str, Any],
) -> GradientBalancer:
    """A :class:`GradientBalancer` around ``aggregator(**its options)``."""
    log_transform = name.endswith(LOG_SUFFIX)
    own_options = _GRADIENT_OPTIONS + (_LOG_OPTIONS if log_transform else ())
    METHODS.check_options(name, options, [*METHODS.options(name), *own_options])
    balancer_options = {key: options.pop(key) for key in own_options if key in options}
    return GradientBalancer(
        shared,
        task_specific,
        n_tasks=n_tasks,
        aggregator=aggregator(**options),
        log_transform=log_transform,
        **balancer_options,
    )
