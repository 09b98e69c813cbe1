"""Multi-task balancing engine: DB-MTL and the standard baselines, for any PyTorch loop.

Imports nothing chemical (only torch, and scipy in the methods that solve an optimization
problem), so models from any domain can use it::

    import molmtl.balancing as mb
    balancer = mb.DBMTL(shared=trunk.parameters(), task_specific=heads.parameters(), n_tasks=3)
    # or by name, e.g. from a config: mb.get("dbmtl", shared=..., task_specific=..., n_tasks=3)
    optimizer.zero_grad()
    diagnostics = balancer.backward(losses)   # losses: [T]; fills .grad
    optimizer.step()

:func:`available` lists the names without importing torch; everything else is imported when
first used. See docs/balancing.md for the methods, their options, backends, errors and resuming.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from molmtl.balancing._registry import METHOD_MODULES, available

if TYPE_CHECKING:
    from molmtl.balancing._base import Aggregator, Balancer
    from molmtl.balancing._factory import get, is_gradient_method
    from molmtl.balancing._gradient_balancer import GradientBalancer
    from molmtl.balancing._gradients import BACKENDS, DEFAULT_BACKEND
    from molmtl.balancing._loss_weighting import LossWeighting
    from molmtl.balancing._methods._gram import GramianWeightedAggregator
    from molmtl.balancing._methods.alignedmtl import AlignedMTL
    from molmtl.balancing._methods.cagrad import CAGrad
    from molmtl.balancing._methods.config import ConFIG
    from molmtl.balancing._methods.dbmtl import DBMTL, GradMax
    from molmtl.balancing._methods.dualproj import DualProj
    from molmtl.balancing._methods.dwa import DynamicWeightAverage
    from molmtl.balancing._methods.ew import EqualWeighting
    from molmtl.balancing._methods.excessmtl import ExcessMTL
    from molmtl.balancing._methods.fairgrad import FairGrad
    from molmtl.balancing._methods.famo import FAMO
    from molmtl.balancing._methods.gls import GeometricLoss
    from molmtl.balancing._methods.go4align import GO4Align
    from molmtl.balancing._methods.graddrop import GradDrop
    from molmtl.balancing._methods.gradnorm import GradNorm
    from molmtl.balancing._methods.gradvac import GradVac
    from molmtl.balancing._methods.imtl import IMTL
    from molmtl.balancing._methods.mgda import MGDA
    from molmtl.balancing._methods.moco import MoCo
    from molmtl.balancing._methods.nashmtl import NashMTL
    from molmtl.balancing._methods.pcgrad import PCGrad
    from molmtl.balancing._methods.rlw import RandomLossWeighting
    from molmtl.balancing._methods.sdmgrad import SDMGrad
    from molmtl.balancing._methods.si import ScaleInvariant
    from molmtl.balancing._methods.stch import STCH
    from molmtl.balancing._methods.upgrad import UPGrad
    from molmtl.balancing._methods.uw import UncertaintyWeighting
    from molmtl.balancing._validation import InvalidGradientError, InvalidLossError

_LAZY = {
    "Aggregator": "molmtl.balancing._base",
    "Balancer": "molmtl.balancing._base",
    "get": "molmtl.balancing._factory",
    "is_gradient_method": "molmtl.balancing._factory",
    "GradientBalancer": "molmtl.balancing._gradient_balancer",
    "BACKENDS": "molmtl.balancing._gradients",
    "DEFAULT_BACKEND": "molmtl.balancing._gradients",
    "LossWeighting": "molmtl.balancing._loss_weighting",
    "GramianWeightedAggregator": "molmtl.balancing._methods._gram",
    "InvalidGradientError": "molmtl.balancing._validation",
    "InvalidLossError": "molmtl.balancing._validation",
    **METHOD_MODULES,
}

__all__ = [
    "BACKENDS",
    "DBMTL",
    "DEFAULT_BACKEND",
    "FAMO",
    "IMTL",
    "MGDA",
    "STCH",
    "Aggregator",
    "AlignedMTL",
    "Balancer",
    "CAGrad",
    "ConFIG",
    "DualProj",
    "DynamicWeightAverage",
    "EqualWeighting",
    "ExcessMTL",
    "FairGrad",
    "GO4Align",
    "GeometricLoss",
    "GradDrop",
    "GradMax",
    "GradNorm",
    "GradVac",
    "GradientBalancer",
    "GramianWeightedAggregator",
    "InvalidGradientError",
    "InvalidLossError",
    "LossWeighting",
    "MoCo",
    "NashMTL",
    "PCGrad",
    "RandomLossWeighting",
    "SDMGrad",
    "ScaleInvariant",
    "UPGrad",
    "UncertaintyWeighting",
    "available",
    "get",
    "is_gradient_method",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'molmtl.balancing' has no attribute {name!r}")
