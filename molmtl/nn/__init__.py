"""Neural-network building blocks: shared graph encoders (a registry) and per-task heads.

>>> encoder = get_encoder("mpnn", node_dim=11, edge_dim=5)
>>> heads = TaskHeads(encoder.out_dim, n_tasks=11)
"""

from molmtl.nn._base import Encoder, available_encoders, encoder_options, get_encoder
from molmtl.nn.gine import GINEEncoder
from molmtl.nn.heads import TaskHeads
from molmtl.nn.mpnn import MPNNEncoder

__all__ = [
    "Encoder",
    "GINEEncoder",
    "MPNNEncoder",
    "TaskHeads",
    "available_encoders",
    "encoder_options",
    "get_encoder",
]
