"""evaluate() on the run's data only, and one clear error for tampered run directories."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from molmtl.rundir import RunDirError
from molmtl.training import ConfigError, evaluate, prepare_run, start


@pytest.fixture
def started(make_tiny, tmp_path):
    start(prepare_run(make_tiny()))
    return tmp_path / "run"


def test_the_same_data_elsewhere_evaluates_other_data_is_refused(started, tiny_csv, tmp_path):
    frame = pd.read_csv(tiny_csv)
    moved = tmp_path / "moved.csv.xz"
    frame.to_csv(moved, index=False)
    assert evaluate(started, device="cpu", data=moved)["n_molecules"] == 4
    leaky = tmp_path / "leaky.csv"
    frame.assign(r2=frame["r2"] * 2).to_csv(leaky, index=False)
    with pytest.raises(ConfigError, match=r"cannot evaluate: the data given .* is not the data"):
        evaluate(started, device="cpu", data=leaky)


def _rewrite(path, change) -> None:
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))


def _drop_checksums(config: dict) -> None:
    config.pop("settings_sha256")


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        ("splits.json", lambda s: s.update(test=[0, 10**9]), "outside the 40 molecules"),
        ("splits.json", lambda s: s.update(test=s["train"][:1]), "overlap or repeat"),
        ("splits.json", lambda s: s.pop("val"), "lacks \\['val'\\]"),
        ("config.json", lambda c: c["targets"].reverse(), "\\['targets'\\] section"),
        ("config.json", lambda c: c["train"].update(lr=1.0), "\\['train'\\] section"),
        ("config.json", lambda c: c["model"].update(hidden_dim=10**7), "\\['model'\\] section"),
        (
            "config.json",
            lambda c: (_drop_checksums(c), c["train"].update(epochs="many")),
            "invalid 'train' section: epochs",
        ),
        (
            "config.json",
            lambda c: (_drop_checksums(c), c.update(targets=[{"name": "mu"}] * 3)),
            "names a target twice",
        ),
        (
            "config.json",
            lambda c: (_drop_checksums(c), c.update(targets="mu")),
            "'targets' must be a JSON list",
        ),
        (
            "config.json",
            lambda c: (_drop_checksums(c), c["model"].update(hidden_dim=10**7)),
            "hidden_dim must be an integer from 1 to 4096",
        ),
        (
            "config.json",
            lambda c: (_drop_checksums(c), c["targets"].reverse(), c["train"]["targets"].sort()),
            "are not those its training settings load",
        ),
    ],
)
def test_a_tampered_run_directory_gives_one_clear_error(started, file, change, message):
    _rewrite(started / file, change)
    with pytest.raises(RunDirError, match=message):
        evaluate(started, device="cpu")


def _places(value, prefix=()):
    """Every path into a JSON value (keys and list positions), the root first."""
    yield prefix
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value[:3])
        for key, inner in items:
            yield from _places(inner, (*prefix, key))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, tiny_csv):
    """A started run, made once for the property test below, which copies it per example."""
    from molmtl.training import TrainConfig

    out = tmp_path_factory.mktemp("pristine") / "run"
    model = {"encoder": "gine", "hidden_dim": 4, "n_layers": 1, "out_dim": 4}
    config = TrainConfig.from_dict(
        {"dataset": "csv", "data": str(tiny_csv), "targets": ["mu", "r2"], "split": "random"}
        | {"model": model, "device": "cpu", "progress": False, "out": str(out)}
    )
    start(prepare_run(config))
    return out


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    st.sampled_from(["config.json", "splits.json"]),
    st.integers(0, 10**6),
    _JSON,
    st.booleans(),
)
def test_any_edit_of_a_run_file_is_one_clear_error_or_harmless(
    tmp_path_factory, pristine, file, pick, value, as_older_run
):
    import shutil

    from molmtl.training import TrainConfig

    run = tmp_path_factory.mktemp("edited") / "run"
    shutil.copytree(pristine, run)
    record = json.loads((run / file).read_text())
    if as_older_run and isinstance(record, dict):
        record.pop("settings_sha256", None)  # the checks behind the checksums
    places = list(_places(record))
    place = places[pick % len(places)]
    if place:
        parent = record
        for key in place[:-1]:
            parent = parent[key]
        parent[place[-1]] = value
    else:
        record = value
    (run / file).write_text(json.dumps(record))
    for action in (
        lambda: evaluate(run, device="cpu"),
        lambda: prepare_run(TrainConfig.from_run(run), resume=True),
    ):
        try:
            action()
        except ValueError as error:  # ConfigError and RunDirError
            assert "\n" not in str(error) and len(str(error)) < 2000
