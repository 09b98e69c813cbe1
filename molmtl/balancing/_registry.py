"""The names of the balancing methods: one registry line per method, classes imported on first use.

This module imports neither torch nor the methods, so :func:`available` is cheap (config
validation, ``--help``); :func:`molmtl.balancing.get` builds a method from its name.
"""

from __future__ import annotations

from molmtl.registry import Registry

#: the suffix that puts the log transform in front of a gradient method (``"pcgrad+log"``).
LOG_SUFFIX = "+log"

_PACKAGE = "molmtl.balancing._methods"

#: :class:`Balancer` subclasses, built as they are: the loss-weighting methods and DB-MTL.
_BALANCERS = {
    "ew": "ew:EqualWeighting",
    "si": "si:ScaleInvariant",
    "gls": "gls:GeometricLoss",
    "uw": "uw:UncertaintyWeighting",
    "dwa": "dwa:DynamicWeightAverage",
    "rlw": "rlw:RandomLossWeighting",
    "famo": "famo:FAMO",
    "dbmtl": "dbmtl:DBMTL",
    "stch": "stch:STCH",
    "go4align": "go4align:GO4Align",
}
#: :class:`Aggregator` subclasses, each run by a :class:`GradientBalancer`; every one is also
#: registered as ``name + LOG_SUFFIX``, with the log transform.
_AGGREGATORS = {
    "gradmax": "dbmtl:GradMax",
    "gradnorm": "gradnorm:GradNorm",
    "mgda": "mgda:MGDA",
    "pcgrad": "pcgrad:PCGrad",
    "gradvac": "gradvac:GradVac",
    "cagrad": "cagrad:CAGrad",
    "imtl": "imtl:IMTL",
    "nashmtl": "nashmtl:NashMTL",
    "alignedmtl": "alignedmtl:AlignedMTL",
    "fairgrad": "fairgrad:FairGrad",
    "upgrad": "upgrad:UPGrad",
    "dualproj": "dualproj:DualProj",
    "config": "config:ConFIG",
    "graddrop": "graddrop:GradDrop",
    "excessmtl": "excessmtl:ExcessMTL",
    "moco": "moco:MoCo",
    "sdmgrad": "sdmgrad:SDMGrad",
}

#: every method class's name → the module that defines it (``molmtl.balancing`` exports them).
METHOD_MODULES: dict[str, str] = {
    target.partition(":")[2]: f"{_PACKAGE}.{target.partition(':')[0]}"
    for target in [*_BALANCERS.values(), *_AGGREGATORS.values()]
}


def _methods() -> Registry[type]:
    methods: Registry[type] = Registry("balancing method")
    for name, target in _BALANCERS.items():
        methods.register(name, f"{_PACKAGE}.{target}")
    for suffix in ("", LOG_SUFFIX):
        for name, target in _AGGREGATORS.items():
            methods.register(name + suffix, f"{_PACKAGE}.{target}")
    return methods


#: name → Balancer or Aggregator class (``"dbmtl"``, ``"pcgrad"``, ``"pcgrad+log"``, ...).
METHODS = _methods()


def available() -> list[str]:
    """Names accepted by :func:`molmtl.balancing.get`: every method, then ``"<gradient method>+log"``."""
    return METHODS.names()
