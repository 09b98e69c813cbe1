"""The encoder interface and the encoder registry.

An encoder turns a :class:`~molmtl.data.GraphBatch` into one vector per molecule; the heads of
:mod:`molmtl.nn.heads` turn that vector into one prediction per task. New encoders subclass
:class:`Encoder` and add one line to ``_ENCODERS``.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from torch import Tensor, nn

if TYPE_CHECKING:
    from molmtl.data import GraphBatch


class Encoder(nn.Module):
    """Base class of the shared encoders: ``forward(batch) -> [num_graphs, out_dim]``.

    Subclasses take ``node_dim`` and ``edge_dim`` (the featurizer's dimensions) as their first
    keyword arguments and set ``out_dim``. They must not synchronize with the host: pooling gets
    its output size from ``batch.num_graphs``, a Python int.
    """

    out_dim: int

    def forward(self, batch: GraphBatch) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _encoders() -> dict[str, type[Encoder]]:
    # Imported here so that the registry and the encoder modules do not import each other.
    from molmtl.nn.gine import GINEEncoder
    from molmtl.nn.mpnn import MPNNEncoder

    return {"mpnn": MPNNEncoder, "gine": GINEEncoder}


def available_encoders() -> list[str]:
    """Names accepted by :func:`get_encoder`."""
    return sorted(_encoders())


def encoder_options(name: str) -> dict[str, object]:
    """The options of encoder ``name`` with their defaults (``node_dim``/``edge_dim`` excluded)."""
    encoder_class = _encoder_class(name)
    parameters = inspect.signature(encoder_class.__init__).parameters
    return {
        key: parameter.default
        for key, parameter in parameters.items()
        if key not in ("self", "node_dim", "edge_dim")
    }


def get_encoder(name: str, *, node_dim: int, edge_dim: int, **options: object) -> Encoder:
    """Build encoder ``name`` for graphs with ``node_dim`` node and ``edge_dim`` edge features.

    Raises:
        ValueError: for an unknown name or option; the message lists the valid ones.
    """
    encoder_class = _encoder_class(name)
    valid = encoder_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for encoder {name!r}; valid options: {sorted(valid)}"
        )
    for key in ("node_dim", "edge_dim"):
        value = {"node_dim": node_dim, "edge_dim": edge_dim}[key]
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a positive int, got {value!r}")
    return encoder_class(node_dim=node_dim, edge_dim=edge_dim, **options)


def _encoder_class(name: str) -> type[Encoder]:
    encoders = _encoders()
    if name not in encoders:
        raise ValueError(f"unknown encoder {name!r}; available: {sorted(encoders)}")
    return encoders[name]


def check_positive_int(name: str, value: object) -> None:
    """Raise a ValueError naming option ``name`` unless ``value`` is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"encoder option {name} must be an int >= 1, got {value!r}")
