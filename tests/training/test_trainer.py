from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from molmtl import balancing
from molmtl.data import PackedGraphs
from molmtl.models import build_model, load_model
from molmtl.training import ConfigError, evaluate, train, train_step


def _metrics(run_dir) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def test_short_run_lowers_the_loss_of_every_task(make_config):
    run_dir = train(make_config(epochs=6))
    rows = _metrics(run_dir)
    assert len(rows) == 6
    for task in ("mu", "homo", "r2"):
        first, last = float(rows[0][f"train_loss/{task}"]), float(rows[-1][f"train_loss/{task}"])
        assert last < first, f"{task}: loss {first:.3f} -> {last:.3f}"


def test_run_directory_holds_every_artifact(make_config):
    run_dir = train(make_config())
    for name in (
        "config.json",
        "model.pt",
        "splits.json",
        "metrics.csv",
        "test_metrics.json",
        "checkpoint.pt",
    ):
        assert (run_dir / name).is_file(), name
    config = json.loads((run_dir / "config.json").read_text())
    assert [t["name"] for t in config["targets"]] == ["mu", "homo", "r2"]
    assert config["train"]["epochs"] == 2
    row = _metrics(run_dir)[0]
    assert {"val_mae/homo", "grad_norm/mu", "weight/r2", "train_loss/mu", "lr"} <= set(row)


def test_evaluate_reads_moved_data_from_the_data_argument(make_config, qm9_csv, tmp_path):
    run_dir = train(make_config())
    moved = tmp_path / "moved.csv"
    qm9_csv.rename(moved)
    try:
        with pytest.raises(FileNotFoundError):
            evaluate(run_dir, device="cpu")
        stored = json.loads((run_dir / "test_metrics.json").read_text())
        recomputed = evaluate(run_dir, device="cpu", data=moved)
        assert recomputed["mae"] == pytest.approx(stored["mae"], rel=1e-5)
    finally:
        moved.rename(qm9_csv)


def test_run_directory_round_trips(make_config):
    run_dir = train(make_config())
    stored = json.loads((run_dir / "test_metrics.json").read_text())
    recomputed = evaluate(run_dir, device="cpu")
    for task, mae in stored["mae"].items():
        assert recomputed["mae"][task] == pytest.approx(mae, rel=1e-5)
    model, _ = load_model(run_dir)
    assert torch.equal(
        model.target_std, torch.load(run_dir / "model.pt", weights_only=True)["target_std"]
    )


def test_resume_equals_an_uninterrupted_run(make_config, tmp_path):
    uninterrupted = train(make_config(epochs=4, out=str(tmp_path / "full")))
    interrupted = make_config(epochs=2, out=str(tmp_path / "resumed"))
    train(interrupted)
    resumed = train(interrupted.replace(epochs=4), resume=True)

    def state(run_dir, name):
        return torch.load(run_dir / name, weights_only=True)

    for name in ("model.pt",):
        for key, value in state(uninterrupted, name).items():
            assert torch.equal(value, state(resumed, name)[key]), key
    final_a = state(uninterrupted, "checkpoint.pt")
    final_b = state(resumed, "checkpoint.pt")
    for key, value in final_a["model"].items():
        assert torch.equal(value, final_b["model"][key]), key
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in _metrics(uninterrupted)]
    assert strip == [{k: v for k, v in row.items() if k != "seconds"} for row in _metrics(resumed)]


def test_resume_refuses_changed_settings(make_config):
    config = make_config(epochs=1)
    train(config)
    with pytest.raises(ConfigError, match=r"\['lr'\]"):
        train(config.replace(epochs=2, lr=1e-2), resume=True)


def test_an_existing_run_is_replaced_only_when_asked(make_config):
    config = make_config(epochs=1)
    train(config)
    with pytest.raises(ConfigError, match="--overwrite"):
        train(config)
    run_dir = train(config.replace(epochs=2), overwrite=True)
    assert len(_metrics(run_dir)) == 2


def test_a_sparsely_labelled_task_does_not_break_training(make_config, qm9_csv, tmp_path):
    import pandas as pd

    frame = pd.read_csv(qm9_csv)
    frame.loc[frame.index[np.arange(len(frame)) % 16 != 0], "homo"] = float("nan")  # 13 labels
    path = tmp_path / "sparse_homo.csv"
    frame.to_csv(path, index=False)
    run_dir = train(make_config(data=str(path), epochs=2))
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert metrics["mae"]["mu"] is not None and metrics["mae"]["r2"] is not None
    model, _ = load_model(run_dir)
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.fixture(scope="module")
def step_inputs():
    from molmtl import featurizers

    featurizer = featurizers.get("2d")
    graphs: PackedGraphs = featurizer.featurize_many(
        ["CCO", "c1ccccc1", "CC(=O)N", "C#N", "OCC(F)F", "CCN"]
    ).graphs
    batch = graphs.batch(torch.arange(len(graphs)))
    targets = torch.randn(len(graphs), 3, generator=torch.Generator().manual_seed(0))
    targets[::2, 1] = float("nan")  # some labels missing
    targets[:, 2] = float("nan")  # a task with no label in the batch
    return featurizer, batch, targets


@pytest.mark.parametrize("name", balancing.available())
def test_every_balancer_trains_a_step(name, step_inputs):
    featurizer, batch, targets = step_inputs
    torch.manual_seed(0)
    model = build_model(
        {"encoder": "gine", "hidden_dim": 8, "n_layers": 1, "out_dim": 8},
        node_dim=featurizer.node_dim,
        edge_dim=featurizer.edge_dim,
        n_tasks=3,
    )
    balancer = balancing.get(
        name, shared=model.shared_parameters(), task_specific=model.task_parameters(), n_tasks=3
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in model.encoder.parameters()]
    losses, mask, diagnostics = train_step(model, balancer, optimizer, batch, targets)
    assert mask.tolist() == [True, True, False]
    assert torch.isfinite(losses).all()
    assert diagnostics["weights"].shape == (3,)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(
        not torch.equal(b, p) for b, p in zip(before, model.encoder.parameters(), strict=True)
    )


def test_bf16_autocast_trains(make_config):
    run_dir = train(make_config(precision="bf16", epochs=1))
    assert json.loads((run_dir / "test_metrics.json").read_text())["mae"]["mu"] is not None


@pytest.mark.slow
def test_compiled_model_trains(make_config):
    run_dir = train(make_config(compile=True, epochs=1))
    assert json.loads((run_dir / "test_metrics.json").read_text())["mae"]["mu"] is not None


@pytest.mark.parametrize("split", ["random", "scaffold"])
def test_subset_split_indexes_the_loaded_dataset(make_config, split):
    from molmtl.training import load_dataset, make_split

    config = make_config(split=split, n_molecules=60)
    dataset = load_dataset(config)
    parts = make_split(config, dataset)
    joined = np.concatenate([parts.train, parts.val, parts.test])
    assert len(joined) == 60 == len(np.unique(joined))
    assert joined.max() < len(dataset)
    again = make_split(config, dataset)
    assert np.array_equal(parts.test, again.test)  # reproducible from the seed
