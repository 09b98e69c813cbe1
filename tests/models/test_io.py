from __future__ import annotations

import json
import pickle

import pytest
import torch

from molmtl.models import RunDirError, build_model, load_model, save_model
from molmtl.models._io import sha256_of


@pytest.fixture
def run_dir(tmp_path, featurizer):
    torch.manual_seed(0)
    model = build_model(
        {"encoder": "gine", "hidden_dim": 16, "out_dim": 16},
        node_dim=featurizer.node_dim,
        edge_dim=featurizer.edge_dim,
        n_tasks=2,
    )
    model.set_target_scaling(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0]))
    metadata = {
        "featurizer": featurizer.spec,
        "targets": [{"name": "a", "unit": "eV"}, {"name": "b", "unit": "D"}],
    }
    save_model(tmp_path, model, metadata)
    return tmp_path, model


def test_round_trip_predicts_the_same(run_dir, graphs):
    path, model = run_dir
    loaded, config = load_model(path)
    batch = graphs.batch(torch.arange(len(graphs)))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict(batch), model.predict(batch), rtol=0, atol=0)
    assert config["targets"][1]["unit"] == "D"
    assert config["weights"]["sha256"] == sha256_of(path / "model.pt")
    assert not loaded.training


def test_weights_load_without_unpickling_objects(run_dir):
    path, _ = run_dir
    state = torch.load(path / "model.pt", weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in state.values())


def _rewrite_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "model.pt").write_bytes((p / "model.pt").read_bytes()[:100]), "checksum"),
        (lambda p: (p / "model.pt").unlink(), "missing"),
        (lambda p: (p / "config.json").unlink(), "config.json is missing"),
        (lambda p: (p / "config.json").write_text("{not json"), "not valid JSON"),
        (lambda p: _rewrite_config(p, format_version=99), "format_version 99"),
        (
            lambda p: _rewrite_config(p, weights={"file": "../model.pt", "sha256": ""}),
            "run directory",
        ),
    ],
    ids=["truncated", "no-weights", "no-config", "bad-json", "future-version", "escape"],
)
def test_damaged_run_dir_gives_a_clear_error(run_dir, damage, message):
    path, _ = run_dir
    damage(path)
    with pytest.raises(RunDirError, match=message):
        load_model(path)


def test_missing_directory_says_how_to_make_one(tmp_path):
    with pytest.raises(RunDirError, match="molmtl train"):
        load_model(tmp_path / "nowhere")


def test_a_different_featurizer_is_refused(run_dir):
    path, _ = run_dir
    config = json.loads((path / "config.json").read_text())
    config["featurizer"]["node_dim"] += 1
    _rewrite_config(path, featurizer=config["featurizer"])
    with pytest.raises(RunDirError, match="featurizer"):
        load_model(path)


class _Exploit:
    def __reduce__(self):
        return (exec, ("raise SystemExit('code from the run directory ran')",))


def test_a_pickle_with_code_is_never_executed(run_dir):
    # Even with a matching checksum, a weights file that needs unpickling objects is refused.
    path, _ = run_dir
    (path / "model.pt").write_bytes(pickle.dumps({"x": _Exploit()}))
    _rewrite_config(path, weights={"file": "model.pt", "sha256": sha256_of(path / "model.pt")})
    with pytest.raises(RunDirError, match="tensor-only"):
        load_model(path)


def test_weights_of_another_shape_are_refused(run_dir):
    path, _ = run_dir
    config = json.loads((path / "config.json").read_text())
    config["model"]["hidden_dim"] = 8
    _rewrite_config(path, model=config["model"])
    with pytest.raises(RunDirError, match="do not fit"):
        load_model(path)
