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
    """Edit config.json as a run written before settings checksums (which would catch it)."""
    config = json.loads((path / "config.json").read_text())
    config.pop("settings_sha256", None)
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


def _edit_section(path, key, change):
    config = json.loads((path / "config.json").read_text())
    change(config[key])
    (path / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("section", "change"),
    [
        ("targets", lambda targets: targets.reverse()),  # swapped names
        ("targets", lambda targets: targets[0].update(report_scale=1000.0)),
        ("model", lambda model: model.update(hidden_dim=8)),
        ("featurizer", lambda spec: spec.update(name="3d")),
    ],
    ids=["swapped-targets", "scale", "size", "featurizer"],
)
def test_an_edited_section_is_named(run_dir, section, change):
    path, _ = run_dir
    _edit_section(path, section, change)
    with pytest.raises(RunDirError, match=rf"edited after training: its \['{section}'\] section"):
        load_model(path)


def test_a_run_written_before_settings_checksums_still_loads(run_dir, graphs):
    path, model = run_dir
    _rewrite_config(path)  # drops settings_sha256
    loaded, config = load_model(path)
    assert "settings_sha256" not in config
    batch = graphs.batch(torch.arange(len(graphs)))
    with torch.no_grad():
        torch.testing.assert_close(loaded.predict(batch), model.eval().predict(batch))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": ["gine"]}, "'model' must be a JSON dict"),
        ({"targets": {"name": "a"}}, "'targets' must be a JSON list"),
        ({"targets": [{"name": "a"}, "b"]}, "non-empty list of"),
        ({"targets": [{"name": "a"}, {"name": "a"}]}, "names a target twice"),
        ({"targets": [{"name": "a"}, {"name": "b", "factor": "x"}]}, "factor must be a number"),
        ({"targets": [{"name": "a"}]}, "n_tasks 2 but 1 targets"),
        ({"featurizer": {"name": 5}}, "featurizer"),
        ({"weights": "model.pt"}, "'weights' must be a JSON dict"),
    ],
)
def test_a_section_of_the_wrong_shape_is_refused(run_dir, changes, message):
    path, _ = run_dir
    _rewrite_config(path, **changes)
    with pytest.raises(RunDirError, match=message):
        load_model(path)


@pytest.mark.parametrize(
    ("option", "value"),
    [("hidden_dim", 10**9), ("n_layers", 10**7), ("out_dim", 0), ("hidden_dim", "16")],
)
def test_enormous_or_odd_sizes_in_config_json_are_refused_before_building(
    run_dir, monkeypatch, option, value
):
    path, _ = run_dir
    config = json.loads((path / "config.json").read_text())
    config["model"][option] = value
    _rewrite_config(path, model=config["model"])

    def no_building(*args, **kwargs):
        raise AssertionError("an encoder was built before its sizes were checked")

    monkeypatch.setattr("molmtl.nn.gine.GINEConv", no_building)
    with pytest.raises(RunDirError, match=f"{option} must be an integer from 1 to"):
        load_model(path)
