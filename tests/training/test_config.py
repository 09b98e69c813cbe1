from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from molmtl.training import ConfigError, TrainConfig, available_presets


def test_presets_are_shipped_and_valid():
    assert {"qm9-quick", "qm9-paper"} <= set(available_presets())
    for name in available_presets():
        TrainConfig.load(preset=name)


def test_paper_preset_is_the_benchmark_protocol():
    config = TrainConfig.load(preset="qm9-paper")
    assert config.model["encoder"] == "mpnn" and config.featurizer == "3d"
    assert (config.lr, config.lr_factor, config.lr_patience, config.min_lr) == (1e-3, 0.7, 5, 1e-5)
    assert (config.batch_size, config.epochs, config.balancer, config.split) == (
        120,
        300,
        "dbmtl",
        "benchmark",
    )
    assert len(config.reference_maes) == 11


@pytest.mark.parametrize("suffix", [".toml", ".yaml"])
def test_layers_apply_in_order(tmp_path, suffix):
    path = tmp_path / f"run{suffix}"
    if suffix == ".toml":
        path.write_text('epochs = 7\nbalancer = "pcgrad"\n[model]\nencoder = "mpnn"\n')
    else:
        path.write_text("epochs: 7\nbalancer: pcgrad\nmodel:\n  encoder: mpnn\n")
    config = TrainConfig.load(
        preset="qm9-quick", path=path, overrides={"balancer": "ew", "seed": None}
    )
    assert config.epochs == 7  # file beats preset
    assert config.balancer == "ew"  # override beats file
    assert config.seed == 0  # a None override means "not given"
    assert config.model == {"encoder": "mpnn"}
    assert config.n_molecules == TrainConfig.load(preset="qm9-quick").n_molecules  # from the preset


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", 2.5),
        ("batch_size", -1),
        ("lr", 0.0),
        ("lr", "fast"),
        ("lr_factor", 1.5),
        ("min_lr", -1.0),
        ("lr_patience", -1),
        ("weight_decay", float("nan")),
        ("split", "temporal"),
        ("split_fractions", [0.5, 0.5]),
        ("split_fractions", [0.8, 0.1, 0.2]),
        ("dataset", "zinc"),
        ("precision", "fp16"),
        ("compile", "yes"),
        ("targets", []),
        ("targets", ["mu", "mu"]),
        ("n_molecules", 0),
        ("seed", -1),
        ("seed", 2**64),
        ("reference_maes", {"mu": -1.0}),
        ("model", "mpnn"),
        ("balancer_options", [1]),
        ("device", ""),
    ],
)
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainConfig.from_dict({"split": "random", field: value})


def test_unknown_field_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown config field\(s\) \['epoch'\].*epochs"):
        TrainConfig.from_dict({"epoch": 3})


def test_csv_dataset_needs_a_path_and_targets():
    with pytest.raises(ConfigError, match="targets"):
        TrainConfig.from_dict({"dataset": "csv", "data": "x.csv", "split": "random"})


def test_benchmark_split_needs_all_of_qm9():
    with pytest.raises(ConfigError, match="split 'benchmark'"):
        TrainConfig.from_dict({"n_molecules": 1000})


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(ConfigError, match="qm9-quick"):
        TrainConfig.load(preset="qm9-huge")


def test_unparseable_file_is_named(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("epochs = = 3")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        TrainConfig.load(path=path)


def test_round_trips_through_a_dict():
    config = TrainConfig.load(preset="qm9-paper")
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"balancer": "dbmtlx"}, "balancer"),
        ({"model": {"encoder": "transformer"}}, "model.encoder"),
    ],
)
def test_unknown_names_fail_before_any_data_is_loaded(overrides, field):
    with pytest.raises(ConfigError, match=rf"{field} must be one of .*got"):
        TrainConfig.load(preset="qm9-quick", overrides=overrides)


def test_switching_the_balancer_drops_the_earlier_layers_options(tmp_path):
    # qm9-quick sets DB-MTL's beta; PCGrad has no such option.
    config = TrainConfig.load(preset="qm9-quick", overrides={"balancer": "pcgrad+log"})
    assert config.balancer == "pcgrad+log" and config.balancer_options == {}
    kept = TrainConfig.load(preset="qm9-quick", overrides={"balancer": "dbmtl"})
    assert kept.balancer_options == {"beta": 0.0}
    path = tmp_path / "options.toml"
    path.write_text('balancer = "gradvac"\n[balancer_options]\nbeta = 0.1\n')
    assert TrainConfig.load(preset="qm9-quick", path=path).balancer_options == {"beta": 0.1}


def _alias_bomb(levels: int = 9) -> str:
    """A YAML billion-laughs: 700-odd bytes whose aliases expand to 10**levels strings."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        refs = ",".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    lines.append(f"targets: *a{levels - 1}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "text",
    [_alias_bomb(), "targets: &t [a, *t]\n"],
    ids=["billion-laughs", "self-reference"],
)
def test_a_yaml_alias_bomb_is_refused_in_bounded_time_and_text(tmp_path, text):
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="expands to more than 10,000 values") as error:
        TrainConfig.load(path=path)
    assert len(str(error.value)) < 500


def test_an_oversized_config_file_is_refused(tmp_path):
    path = tmp_path / "big.toml"
    path.write_text("# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="larger than 1,000,000 bytes"):
        TrainConfig.load(path=path)


@pytest.mark.parametrize(
    "values",
    [
        {"targets": [["x" * 10**6]] * 10**4},
        {"model": {"encoder": 7, "blob": "y" * 10**6}},
        {"split_fractions": list(range(10**5))},
        {"x" * 10**6: 1},
        {1: 2, None: 3},  # YAML keys need not be strings
    ],
    ids=["targets", "model", "fractions", "long-key", "odd-keys"],
)
def test_error_messages_stay_short_whatever_the_value(values):
    with pytest.raises(ConfigError) as error:
        TrainConfig.from_dict({"split": "random", **values})
    assert len(str(error.value)) < 1000 and "\n" not in str(error.value)


def test_resuming_from_tampered_stored_settings_names_the_file(make_tiny, tmp_path):
    import json

    from molmtl.training import prepare_run, start

    start(prepare_run(make_tiny()))
    path = tmp_path / "run" / "config.json"
    config = json.loads(path.read_text())
    config.pop("settings_sha256")  # as a run written before settings checksums
    config["train"]["batch_size"] = "big"
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=r"cannot resume .*config.json: batch_size must be"):
        TrainConfig.from_run(tmp_path / "run")


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS = sorted(TrainConfig.__dataclass_fields__)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=6), _JSON_VALUES, max_size=5))
def test_any_table_of_settings_is_a_config_or_one_config_error(values):
    try:
        config = TrainConfig.from_dict(values)
    except ConfigError as error:
        assert "\n" not in str(error) and len(str(error)) < 1000
    else:
        assert TrainConfig.from_dict(config.to_dict()) == config
