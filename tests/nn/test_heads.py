from __future__ import annotations

import pytest
import torch

from molmtl.nn import TaskHeads


@pytest.mark.parametrize("hidden_dim", [None, 7])
def test_heads_equal_a_loop_of_per_task_modules(hidden_dim):
    torch.manual_seed(0)
    heads = TaskHeads(in_dim=5, n_tasks=3, hidden_dim=hidden_dim)
    embedding = torch.randn(4, 5)
    expected = []
    for t in range(3):
        if hidden_dim is None:
            expected.append(embedding @ heads.weight[t] + heads.bias[t])
        else:
            hidden = torch.relu(embedding @ heads.hidden_weight[t] + heads.hidden_bias[t])
            expected.append(hidden @ heads.weight[t] + heads.bias[t])
    torch.testing.assert_close(heads(embedding), torch.stack(expected, dim=1))


@pytest.mark.parametrize("hidden_dim", [None, 7])
@pytest.mark.parametrize("task", [0, 2])
def test_a_task_loss_only_moves_its_own_head(hidden_dim, task):
    heads = TaskHeads(in_dim=5, n_tasks=3, hidden_dim=hidden_dim)
    heads(torch.randn(4, 5))[:, task].sum().backward()
    for parameter in heads.parameters():
        other_rows = torch.cat([parameter.grad[:task], parameter.grad[task + 1 :]])
        assert torch.all(other_rows == 0)
        assert torch.any(parameter.grad[task] != 0)


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_bad_hidden_dim_is_named(bad):
    with pytest.raises(ValueError, match="head_hidden_dim"):
        TaskHeads(in_dim=5, n_tasks=3, hidden_dim=bad)
