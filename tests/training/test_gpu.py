"""GPU checks of the trainer (run with ``pytest -m gpu`` on a CUDA machine)."""

from __future__ import annotations

import json

import pytest
import torch

from molmtl import balancing, featurizers
from molmtl.models import build_model
from molmtl.training import train, train_epoch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("balancer_name", ["ew", "dbmtl"])
def test_an_epoch_never_synchronizes_with_the_host(balancer_name):
    featurizer = featurizers.get("2d")
    smiles = ["CCO", "c1ccccc1", "CC(=O)N", "C#N", "OCC(F)F", "CCN", "C1CC1", "CC(C)O"] * 8
    graphs = featurizer.featurize_many(smiles).graphs.to("cuda")
    targets = torch.randn(len(smiles), 3, device="cuda")
    targets[::3, 1] = float("nan")
    model = build_model(
        {"encoder": "gine"}, node_dim=featurizer.node_dim, edge_dim=featurizer.edge_dim, n_tasks=3
    )
    model.cuda()
    balancer = balancing.get(
        balancer_name,
        shared=model.shared_parameters(),
        task_specific=model.task_parameters(),
        n_tasks=3,
    )
    optimizer = torch.optim.Adam(model.parameters())
    order = torch.randperm(len(smiles))
    # Warm-up; its 4 steps also cover the 'fastest' backend calibration, which syncs by design.
    train_epoch(model, balancer, optimizer, graphs, targets, order, batch_size=16)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        sums = train_epoch(model, balancer, optimizer, graphs, targets, order, batch_size=16)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(sums.means()[:2]).all()


def test_training_on_cuda_writes_a_run(make_config):
    run_dir = train(make_config(device="cuda", epochs=2))
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert all(value is not None for value in metrics["mae"].values())
