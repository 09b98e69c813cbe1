"""The MPNN of the QM9 multi-task benchmark (Gilmer et al. 2017, as used by Nash-MTL and DB-MTL).

Linear embedding to ``hidden_dim`` → ``n_iterations`` rounds of an edge-conditioned convolution
(NNConv, mean aggregation) followed by a GRU, with weights shared across rounds → Set2Set
readout → linear to ``hidden_dim``. With the 3D featurizer (11 node / 5 edge features) and the
defaults it has 616,960 parameters, the count of the published benchmark model without its
output layer.

The edge network's output (a ``hidden_dim × hidden_dim`` matrix per edge) depends only on the
edge features, which are the same in every round, so it is computed once per forward pass
instead of once per round as ``NNConv.forward`` would: the same function with the same
parameters, at about a third of the dominant cost (the edge network is ~100× the FLOPs of the
messages on QM9's complete 3D graphs). The GRU and Set2Set steps run through
:mod:`molmtl.nn._recurrent` (plain tensor ops on the same parameters), so the balancing engine's
batched per-task gradients work on CUDA, where cuDNN's RNN kernels cannot be vmapped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch_geometric.nn import NNConv, Set2Set
from torch_geometric.utils import scatter

from molmtl.nn._base import Encoder, check_positive_int
from molmtl.nn._recurrent import gru_step, set2set

if TYPE_CHECKING:
    from molmtl.graphs import GraphBatch


class MPNNEncoder(Encoder):
    """Edge-network MPNN with GRU updates and Set2Set readout.

    Args:
        node_dim: input node features ``F``.
        edge_dim: input edge features ``E``.
        hidden_dim: width of node states and of the output (64 in the benchmark).
        edge_hidden_dim: hidden width of the edge network ``E -> hidden -> hidden_dim²``.
        n_iterations: message-passing rounds (weights shared across rounds).
        set2set_steps: processing steps of the Set2Set readout.
    """

    def __init__(
        self,
        *,
        node_dim: int,
        edge_dim: int,
        hidden_dim: int = 64,
        edge_hidden_dim: int = 128,
        n_iterations: int = 3,
        set2set_steps: int = 3,
    ) -> None:
        super().__init__()
        for name, value in [
            ("hidden_dim", hidden_dim),
            ("edge_hidden_dim", edge_hidden_dim),
            ("n_iterations", n_iterations),
            ("set2set_steps", set2set_steps),
        ]:
            check_positive_int(name, value)
        self.n_iterations = n_iterations
        self.out_dim = hidden_dim
        self.embed = nn.Linear(node_dim, hidden_dim)
        edge_network = nn.Sequential(
            nn.Linear(edge_dim, edge_hidden_dim),
            nn.ReLU(),
            nn.Linear(edge_hidden_dim, hidden_dim * hidden_dim),
        )
        self.conv = NNConv(hidden_dim, hidden_dim, edge_network, aggr="mean")
        self.gru = nn.GRU(hidden_dim, hidden_dim)
        self.readout = Set2Set(hidden_dim, processing_steps=set2set_steps)
        self.project = nn.Linear(2 * hidden_dim, hidden_dim)

    def forward(self, batch: GraphBatch) -> Tensor:
        """``[num_graphs, hidden_dim]`` molecule embeddings."""
        node_states = torch.relu(self.embed(batch.x))  # [num_nodes, hidden_dim]
        hidden_dim = node_states.shape[1]
        # [num_edges, hidden_dim, hidden_dim], shared by all rounds
        edge_weights = self.conv.nn(batch.edge_attr).view(-1, hidden_dim, hidden_dim)
        source, target = batch.edge_index
        for _ in range(self.n_iterations):
            messages = torch.bmm(node_states[source].unsqueeze(1), edge_weights).squeeze(1)
            aggregated = scatter(
                messages, target, dim=0, dim_size=node_states.shape[0], reduce="mean"
            )
            convolved = aggregated + self.conv.lin(node_states) + self.conv.bias  # NNConv's output
            # The GRU's output is its new state; plain ops instead of nn.GRU keep vmap working.
            node_states = gru_step(torch.relu(convolved), node_states, self.gru)
        pooled = set2set(node_states, batch.batch, batch.num_graphs, self.readout)
        return torch.relu(self.project(pooled))
