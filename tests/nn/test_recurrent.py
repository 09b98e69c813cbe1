"""The plain-op GRU and Set2Set steps equal the torch / PyG modules and support vmap."""

import pytest
import torch
from torch import nn
from torch_geometric.nn import Set2Set

from molmtl.nn import get_encoder
from molmtl.nn._recurrent import gru_step, set2set


@pytest.mark.parametrize("num_nodes", [1, 7, 40])
def test_gru_step_equals_nn_gru(num_nodes):
    torch.manual_seed(num_nodes)
    gru = nn.GRU(6, 5)
    inputs, state = torch.randn(num_nodes, 6), torch.randn(num_nodes, 5)
    _, expected = gru(inputs.unsqueeze(0), state.unsqueeze(0))
    torch.testing.assert_close(gru_step(inputs, state, gru), expected.squeeze(0))


@pytest.mark.parametrize("graph_sizes", [[1], [3, 1, 5], [4, 4, 2, 7]])
def test_set2set_equals_pyg(graph_sizes):
    torch.manual_seed(len(graph_sizes))
    readout = Set2Set(8, processing_steps=3)
    nodes = torch.randn(sum(graph_sizes), 8)
    graph_index = torch.repeat_interleave(torch.arange(len(graph_sizes)), torch.tensor(graph_sizes))
    expected = readout(nodes, graph_index, dim_size=len(graph_sizes))
    torch.testing.assert_close(set2set(nodes, graph_index, len(graph_sizes), readout), expected)


@pytest.mark.parametrize("name", ["mpnn", "gine"])
def test_per_task_gradients_batch_under_vmap(graphs, name):
    # The balancing engine's batched backend: one vmapped backward instead of T backward passes.
    torch.manual_seed(0)
    encoder = get_encoder(name, node_dim=11, edge_dim=5, hidden_dim=16)
    heads = nn.Linear(encoder.out_dim, 3)
    batch = graphs.batch(torch.arange(len(graphs)))
    parameters = list(encoder.parameters())

    def task_losses():
        return heads(encoder(batch)).pow(2).mean(dim=0)  # [3]

    batched = torch.autograd.grad(
        task_losses(), parameters, grad_outputs=torch.eye(3), is_grads_batched=True
    )
    for task in range(3):
        sequential = torch.autograd.grad(task_losses()[task], parameters)
        for batched_grad, sequential_grad in zip(batched, sequential, strict=True):
            torch.testing.assert_close(batched_grad[task], sequential_grad, rtol=1e-4, atol=1e-6)
