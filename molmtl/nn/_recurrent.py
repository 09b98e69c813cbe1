"""GRU and Set2Set steps written with plain tensor ops, from the modules' own parameters.

cuDNN's RNN kernels have no vmap batching rule, so the balancing engine's batched backend
(``torch.autograd.grad(..., is_grads_batched=True)``) fails through ``nn.GRU`` and ``nn.LSTM``
on CUDA ("Batching rule not implemented for aten::_cudnn_rnn_backward", seen on an H100). These
functions compute the same thing with ops that vmap supports; the modules stay the parameter
holders, so parameter names and counts are those of the published model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional
from torch_geometric.nn import Set2Set
from torch_geometric.utils import scatter, softmax


def gru_step(inputs: Tensor, state: Tensor, gru: nn.GRU) -> Tensor:
    """One step of the single-layer ``gru``: ``inputs [N, F]``, ``state [N, H]`` → ``[N, H]``."""
    gates_from_input = functional.linear(inputs, gru.weight_ih_l0, gru.bias_ih_l0)
    gates_from_state = functional.linear(state, gru.weight_hh_l0, gru.bias_hh_l0)
    reset_input, update_input, candidate_input = gates_from_input.chunk(3, dim=1)
    reset_state, update_state, candidate_state = gates_from_state.chunk(3, dim=1)
    reset = torch.sigmoid(reset_input + reset_state)
    update = torch.sigmoid(update_input + update_state)
    candidate = torch.tanh(candidate_input + reset * candidate_state)
    return candidate + update * (state - candidate)  # (1 - z) * n + z * h


def lstm_step(inputs: Tensor, state: Tensor, cell: Tensor, lstm: nn.LSTM) -> tuple[Tensor, Tensor]:
    """One step of the single-layer ``lstm``: returns the new ``(state, cell)``, each ``[N, H]``."""
    gates = functional.linear(inputs, lstm.weight_ih_l0, lstm.bias_ih_l0) + functional.linear(
        state, lstm.weight_hh_l0, lstm.bias_hh_l0
    )
    input_gate, forget_gate, candidate, output_gate = gates.chunk(4, dim=1)
    cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(input_gate) * torch.tanh(candidate)
    return torch.sigmoid(output_gate) * torch.tanh(cell), cell


def set2set(nodes: Tensor, graph_index: Tensor, num_graphs: int, readout: Set2Set) -> Tensor:
    """PyG's Set2Set readout with ``readout``'s parameters.

    Args:
        nodes: ``[num_nodes, C]`` node states.
        graph_index: ``[num_nodes]`` graph of each node.
        num_graphs: number of graphs (a Python int, so no host sync).

    Returns:
        ``[num_graphs, 2 * C]`` graph embeddings.
    """
    channels = readout.in_channels
    state = nodes.new_zeros(num_graphs, channels)
    cell = nodes.new_zeros(num_graphs, channels)
    query = nodes.new_zeros(num_graphs, 2 * channels)
    for _ in range(readout.processing_steps):
        state, cell = lstm_step(query, state, cell, readout.lstm)
        scores = (nodes * state.index_select(0, graph_index)).sum(dim=-1, keepdim=True)
        attention = softmax(scores, graph_index, num_nodes=num_graphs, dim=0)
        pooled = scatter(attention * nodes, graph_index, dim=0, dim_size=num_graphs, reduce="sum")
        query = torch.cat([state, pooled], dim=-1)
    return query
