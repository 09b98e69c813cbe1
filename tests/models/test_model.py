from __future__ import annotations

import pytest
import torch

from molmtl.models import MultiTaskModel, build_model
from molmtl.nn import available_encoders


@pytest.mark.parametrize("encoder", available_encoders())
def test_forward_is_standardized_and_predict_is_physical(encoder, graphs, featurizer):
    model = build_model(
        {"encoder": encoder}, node_dim=featurizer.node_dim, edge_dim=featurizer.edge_dim, n_tasks=3
    )
    model.set_target_scaling(torch.tensor([1.0, -2.0, 100.0]), torch.tensor([0.5, 3.0, 20.0]))
    batch = graphs.batch(torch.arange(len(graphs)))
    with torch.no_grad():
        standardized = model(batch)
        physical = model.predict(batch)
    assert standardized.shape == (len(graphs), 3)
    torch.testing.assert_close(physical, standardized * model.target_std + model.target_mean)


@pytest.mark.parametrize("encoder", available_encoders())
@pytest.mark.parametrize("head_hidden_dim", [None, 16])
def test_shared_and_task_parameters_partition_the_model(encoder, head_hidden_dim):
    model = build_model(
        {"encoder": encoder, "head_hidden_dim": head_hidden_dim}, node_dim=6, edge_dim=3, n_tasks=4
    )
    shared = {id(p) for p in model.shared_parameters()}
    task = {id(p) for p in model.task_parameters()}
    assert shared and task and not shared & task
    assert shared | task == {id(p) for p in model.parameters()}


def test_scaling_buffers_are_saved_but_not_trained():
    model = build_model({"encoder": "gine"}, node_dim=6, edge_dim=3, n_tasks=2)
    assert {"target_mean", "target_std"} <= set(model.state_dict())
    assert all(p is not model.target_mean for p in model.parameters())


def test_scaling_shape_is_checked():
    model = build_model({"encoder": "gine"}, node_dim=6, edge_dim=3, n_tasks=2)
    with pytest.raises(ValueError, match=r"shape \[2\]"):
        model.set_target_scaling(torch.zeros(3), torch.ones(3))


def test_build_model_records_its_full_config():
    model = build_model({"encoder": "mpnn", "hidden_dim": 32}, node_dim=11, edge_dim=5, n_tasks=2)
    assert model.config["hidden_dim"] == 32
    assert model.config["n_iterations"] == 3  # defaults are recorded too
    assert (model.config["node_dim"], model.config["edge_dim"], model.config["n_tasks"]) == (
        11,
        5,
        2,
    )
    assert isinstance(model, MultiTaskModel)


def test_build_model_names_unknown_keys():
    with pytest.raises(ValueError, match="dropout"):
        build_model({"encoder": "gine", "dropout": 0.1}, node_dim=6, edge_dim=3, n_tasks=2)


@pytest.mark.parametrize("encoder", available_encoders())
def test_checking_a_config_allocates_nothing_and_draws_no_random_numbers(encoder):
    from molmtl.models import check_model_config

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    count = check_model_config({"encoder": encoder}, node_dim=11, edge_dim=5, n_tasks=3)
    assert torch.equal(torch.rand(3), expected)
    torch.manual_seed(0)
    model = build_model({"encoder": encoder}, node_dim=11, edge_dim=5, n_tasks=3)
    assert count == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("config", "n_tasks", "message"),
    [
        (
            {"encoder": "gine", "hidden_dim": 4097},
            3,
            "hidden_dim must be an integer from 1 to 4096",
        ),
        ({"encoder": "gine", "n_layers": 65}, 3, "n_layers must be an integer from 1 to 64"),
        ({"encoder": "mpnn", "set2set_steps": True}, 3, "set2set_steps must be an integer"),
        ({"encoder": "gine", "head_hidden_dim": 2.5}, 3, "head_hidden_dim must be an integer"),
        ({"encoder": "gine"}, 10**5, "n_tasks must be an integer from 1 to 1024"),
        ({"encoder": "mpnn", "hidden_dim": 1024}, 3, "parameters, more than the 100,000,000"),
        ({"encoder": ["gine"]}, 3, "encoder must be a name"),
        ({"encoder": "gine", "hidden": 8}, 3, "unknown option"),
        ("gine", 3, "must be a table"),
    ],
)
def test_sizes_beyond_their_bounds_are_refused_before_building(config, n_tasks, message):
    with pytest.raises(ValueError, match=message):
        build_model(config, node_dim=11, edge_dim=5, n_tasks=n_tasks)
