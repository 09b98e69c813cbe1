"""A light 2D encoder for quick runs: residual GINE convolutions with sum + mean pooling."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch_geometric.nn import GINEConv, global_add_pool, global_mean_pool

from molmtl.nn._base import Encoder, check_positive_int

if TYPE_CHECKING:
    from molmtl.graphs import GraphBatch


class GINEEncoder(Encoder):
    """GINE (Hu et al. 2020) message passing with residual connections.

    Sum pooling keeps size-extensive properties (energies, polarizability) easy to learn;
    mean pooling keeps intensive ones (orbital energies) easy.

    Args:
        node_dim: input node features ``F``.
        edge_dim: input edge features ``E``.
        hidden_dim: width of node states.
        n_layers: number of GINE convolutions (separate weights each).
        out_dim: width of the molecule embedding.
    """

    def __init__(
        self,
        *,
        node_dim: int,
        edge_dim: int,
        hidden_dim: int = 96,
        n_layers: int = 3,
        out_dim: int = 96,
    ) -> None:
        super().__init__()
        for name, value in [
            ("hidden_dim", hidden_dim),
            ("n_layers", n_layers),
            ("out_dim", out_dim),
        ]:
            check_positive_int(name, value)
        self.out_dim = out_dim
        self.embed = nn.Linear(node_dim, hidden_dim)
        self.convs = nn.ModuleList(
            GINEConv(
                nn.Sequential(
                    nn.Linear(hidden_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, hidden_dim)
                ),
                edge_dim=edge_dim,
            )
            for _ in range(n_layers)
        )
        self.project = nn.Linear(2 * hidden_dim, out_dim)

    def forward(self, batch: GraphBatch) -> Tensor:
        """``[num_graphs, out_dim]`` molecule embeddings."""
        node_states = torch.relu(self.embed(batch.x))  # [num_nodes, hidden_dim]
        for conv in self.convs:
            node_states = node_states + torch.relu(
                conv(node_states, batch.edge_index, batch.edge_attr)
            )
        pooled = torch.cat(
            [
                global_add_pool(node_states, batch.batch, size=batch.num_graphs),
                global_mean_pool(node_states, batch.batch, size=batch.num_graphs),
            ],
            dim=-1,
        )  # [num_graphs, 2 * hidden_dim]
        return torch.relu(self.project(pooled))
