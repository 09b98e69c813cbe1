"""The encoder registry: names → encoder classes, imported on first use.

Each entry is a ``"module:Class"`` string, so :func:`available_encoders` lists the names without
importing torch (a config validator or ``--help`` can call it), and this module and the encoder
modules do not import each other. A new encoder subclasses :class:`~molmtl.nn.Encoder` in its
own module and adds one line here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from molmtl.registry import Registry

if TYPE_CHECKING:
    from molmtl.nn._base import Encoder

#: the featurizer's dimensions, passed by :func:`get_encoder` rather than as options
_DIMENSIONS = ("node_dim", "edge_dim")

ENCODERS: Registry[type[Encoder]] = Registry("encoder")
# registered in sorted order: the "available: [...]" of an unknown name lists them so
ENCODERS.register("gine", "molmtl.nn.gine:GINEEncoder")
ENCODERS.register("mpnn", "molmtl.nn.mpnn:MPNNEncoder")


def available_encoders() -> list[str]:
    """Names accepted by :func:`get_encoder`."""
    return sorted(ENCODERS.names())


def encoder_options(name: str) -> dict[str, object]:
    """The options of encoder ``name`` with their defaults (``node_dim``/``edge_dim`` excluded)."""
    return ENCODERS.options(name, skip=_DIMENSIONS)


def get_encoder(name: str, *, node_dim: int, edge_dim: int, **options: object) -> Encoder:
    """Build encoder ``name`` for graphs with ``node_dim`` node and ``edge_dim`` edge features.

    The encoder maps a :class:`~molmtl.graphs.GraphBatch` to ``[num_graphs, encoder.out_dim]``.

    Raises:
        ValueError: for an unknown name or option; the message lists the valid ones.
    """
    ENCODERS.check_options(name, options, encoder_options(name))
    for key, value in (("node_dim", node_dim), ("edge_dim", edge_dim)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a positive int, got {value!r}")
    return ENCODERS.get(name)(node_dim=node_dim, edge_dim=edge_dim, **options)
