"""Multi-task balancing engine: DB-MTL and the standard baselines, for any PyTorch loop.

Imports nothing chemical (only torch, and scipy in the methods that solve an optimization
problem), so models from any domain can use it::

    import molmtl.balancing as mb
    balancer = mb.get("dbmtl", shared=trunk.parameters(), task_specific=heads.parameters(), n_tasks=3)
    optimizer.zero_grad()
    diagnostics = balancer.backward(losses)   # losses: [T]; fills .grad
    optimizer.step()

See docs/balancing.md for the methods, their options, backends, errors and resuming.
"""

from molmtl.balancing._base import Aggregator, Balancer
from molmtl.balancing._gradient_balancer import GradientBalancer
from molmtl.balancing._gradients import BACKENDS, DEFAULT_BACKEND
from molmtl.balancing._loss_weighting import LossWeighting
from molmtl.balancing._registry import available, get
from molmtl.balancing._validation import InvalidLossError

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "Aggregator",
    "Balancer",
    "GradientBalancer",
    "InvalidLossError",
    "LossWeighting",
    "available",
    "get",
]
