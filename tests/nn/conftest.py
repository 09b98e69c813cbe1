"""Random graphs for encoder tests: any node/edge dimensions, no chemistry needed."""

from __future__ import annotations

import pytest
import torch

from molmtl.graphs import PackedGraphs


def random_packed_graphs(
    n_graphs: int, node_dim: int, edge_dim: int, seed: int = 0
) -> PackedGraphs:
    """``n_graphs`` random graphs of 1-8 nodes with random directed edges (both directions)."""
    generator = torch.Generator().manual_seed(seed)
    xs, edge_indices, edge_attrs, node_counts, edge_counts = [], [], [], [], []
    for _ in range(n_graphs):
        n = int(torch.randint(1, 9, (1,), generator=generator))
        pairs = (
            torch.combinations(torch.arange(n), 2) if n > 1 else torch.zeros(0, 2, dtype=torch.long)
        )
        keep = torch.rand(pairs.shape[0], generator=generator) < 0.6
        pairs = pairs[keep]
        edge_index = torch.cat([pairs.T, pairs.T.flip(0)], dim=1)
        xs.append(torch.randn(n, node_dim, generator=generator))
        edge_indices.append(edge_index)
        edge_attrs.append(torch.randn(edge_index.shape[1], edge_dim, generator=generator))
        node_counts.append(n)
        edge_counts.append(edge_index.shape[1])
    zero = torch.zeros(1, dtype=torch.long)
    return PackedGraphs(
        x=torch.cat(xs),
        edge_index=torch.cat(edge_indices, dim=1),
        edge_attr=torch.cat(edge_attrs),
        node_ptr=torch.cat([zero, torch.tensor(node_counts).cumsum(0)]),
        edge_ptr=torch.cat([zero, torch.tensor(edge_counts).cumsum(0)]),
    )


@pytest.fixture
def graphs() -> PackedGraphs:
    """12 random graphs with 11 node and 5 edge features (the 3D benchmark dimensions)."""
    return random_packed_graphs(12, node_dim=11, edge_dim=5)
