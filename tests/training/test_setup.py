"""What prepare_run refuses before training, and the run directory it leaves (fresh or replaced)."""

from __future__ import annotations

import json
import shutil
import warnings

import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from molmtl.rundir import RunDir, RunDirError
from molmtl.training import ConfigError, TrainConfig, prepare_run, start
from molmtl.training._setup import TrainingWarning
from tests.training.conftest import write_csv


@pytest.fixture
def frame(tiny_csv) -> pd.DataFrame:
    return pd.read_csv(tiny_csv)


@pytest.mark.parametrize("out", ["file", "file/run"])
def test_an_out_that_is_or_lies_under_a_file_is_refused(make_tiny, tmp_path, out):
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ConfigError, match="file is a file, not a directory"):
        prepare_run(make_tiny(out=str(tmp_path / out)))
    assert (tmp_path / "file").read_text() == "mine"


def test_an_out_with_a_nul_character_is_a_config_error(make_tiny, tmp_path):
    with pytest.raises(ConfigError, match=r"out: .*null"):
        prepare_run(make_tiny(out=str(tmp_path / "a\0b")))


@pytest.mark.parametrize("rows", [0, 5], ids=["header-only", "all-invalid"])
def test_data_without_a_valid_molecule_is_refused(make_tiny, frame, tmp_path, rows):
    bad = frame.head(rows).assign(smiles="not a molecule")
    data = write_csv(tmp_path / "bad.csv", bad)
    with pytest.raises(ConfigError, match=f"has no valid molecule: {rows} data rows"):
        prepare_run(make_tiny(data=data))
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("n", "fractions", "empty", "shown"),
    [
        (3, [0.8, 0.1, 0.1], "validation", "training 2, validation 0, test 1"),
        (10, [0.02, 0.49, 0.49], "training", "training 0, validation 5, test 5"),
        (4, [0.5, 0.4, 0.1], "test", "training 2, validation 2, test 0"),
    ],
)
def test_an_empty_split_is_refused_with_the_counts(
    make_tiny, frame, tmp_path, n, fractions, empty, shown
):
    data = write_csv(tmp_path / "few.csv", frame.head(n))
    with pytest.raises(ConfigError, match=f"leaves the {empty} split empty \\({shown}\\)"):
        prepare_run(make_tiny(data=data, split_fractions=fractions))
    assert not (tmp_path / "run").exists()


def test_a_target_without_labels_is_refused_by_name(make_tiny, frame, tmp_path):
    data = write_csv(tmp_path / "no_homo.csv", frame.assign(homo=float("nan")))
    with pytest.raises(ConfigError, match=r"target 'homo' has no label in .*no_homo.csv"):
        prepare_run(make_tiny(data=data))


def test_a_target_without_training_labels_is_refused(make_tiny, frame, tmp_path):
    from molmtl.training import load_dataset, make_split

    config = make_tiny()
    train_rows = make_split(config, load_dataset(config)).train
    frame.loc[train_rows, "r2"] = float("nan")  # all 40 SMILES are valid: rows = molecules
    data = write_csv(tmp_path / "r2_untrained.csv", frame)
    with pytest.raises(ConfigError, match="target 'r2' has no label among the 32 training"):
        prepare_run(make_tiny(data=data))


def test_invalid_rows_are_recorded_and_counted(make_tiny, frame, tmp_path):
    frame.loc[[3, 17], "smiles"] = ["C1CC", "not smiles"]
    data = write_csv(tmp_path / "some_bad.csv", frame)
    with pytest.warns(TrainingWarning, match="2 of 40 data rows have invalid SMILES"):
        run = prepare_run(make_tiny(data=data))
    rows = pd.read_csv(run.run_dir.invalid_rows_path)
    assert rows["row"].tolist() == [3, 17]
    assert rows["smiles"].tolist() == ["C1CC", "not smiles"]
    assert all(rows["reason"].str.len() > 0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": {"encoder": "gine", "width": 8}}, "unknown option.*'width'"),
        ({"model": {"encoder": "gine", "hidden_dim": "wide"}}, "hidden_dim must be an integer"),
        ({"model": {"encoder": "gine", "hidden_dim": 10**6}}, "hidden_dim must be .* 4096"),
        ({"model": {"encoder": "gine", "n_layers": 10**9}}, "n_layers must be .* 64"),
        ({"model": {"encoder": "mpnn", "hidden_dim": 4096}}, "parameters, more than"),
        ({"balancer": "dbmtl", "balancer_options": {"speed": 1}}, "unknown option.*'speed'"),
        ({"balancer": "pcgrad", "balancer_options": {"backend": "warp"}}, "backend"),
        ({"featurizer": "4d"}, "featurizer"),
    ],
)
def test_model_and_balancer_options_are_checked_before_the_data_loads(
    make_tiny, monkeypatch, changes, message
):
    def no_loading(config):
        raise AssertionError("the data was loaded before the options were checked")

    monkeypatch.setattr("molmtl.training._setup.load_dataset", no_loading)
    with pytest.raises(ConfigError, match=message):
        prepare_run(make_tiny(**changes))


def _old_run(path) -> None:
    """A run directory as an earlier molmtl run left it, plus a file of the user's."""
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"format_version": 1, "train": {}}))
    for name in ("model.pt", "checkpoint.pt", "metrics.csv", "test_metrics.json"):
        (path / name).write_text("old")
    (path / ".checkpoint.pt.123.tmp").write_text("old")
    (path / "plots").mkdir()
    (path / "plots" / "loss.png").write_text("old")
    (path / "notes.txt").write_text("mine")


def test_overwrite_removes_the_old_run_before_writing_anything(make_tiny, tmp_path):
    out = tmp_path / "run"
    _old_run(out)
    with pytest.warns(TrainingWarning, match=r"\['notes.txt'\], which molmtl did not write"):
        run = prepare_run(make_tiny(), overwrite=True)
    # what the new run wrote so far, and the user's file: nothing of the old run
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "splits.json"]
    assert (out / "notes.txt").read_text() == "mine"
    start(run)
    assert not (out / "metrics.csv").exists() and not (out / "test_metrics.json").exists()


def test_a_refused_overwrite_keeps_the_old_run(make_tiny, frame, tmp_path):
    out = tmp_path / "run"
    _old_run(out)
    data = write_csv(tmp_path / "few.csv", frame.head(3))
    with pytest.raises(ConfigError, match="split empty"):
        prepare_run(make_tiny(data=data), overwrite=True)
    assert (out / "checkpoint.pt").read_text() == "old"


def test_overwrite_refuses_a_directory_that_is_not_a_run(make_tiny, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.csv").write_text("the user's own")
    with pytest.raises(ConfigError, match=r"holds \['metrics.csv'\] but no run that molmtl"):
        prepare_run(make_tiny(), overwrite=True)
    assert (out / "metrics.csv").read_text() == "the user's own"


def test_part_of_a_run_is_not_clobbered_without_a_flag(make_tiny, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "splits.json").write_text(json.dumps({"train": [], "val": [], "test": []}))
    with pytest.raises(ConfigError, match="already holds a run"):
        prepare_run(make_tiny())


@pytest.fixture
def started(make_tiny, tmp_path):
    """A run directory of a started run (epoch 0: config.json, model.pt, checkpoint.pt)."""
    start(prepare_run(make_tiny()))
    return tmp_path / "run"


def test_resume_accepts_the_same_data_moved_and_refuses_other_data(
    make_tiny, tiny_csv, frame, tmp_path, started
):
    moved = tmp_path / "elsewhere" / "same.csv.gz"
    moved.parent.mkdir()
    frame.to_csv(moved, index=False)  # moved and compressed: the same molecules and labels
    prepare_run(make_tiny(data=str(moved)), resume=True)
    for name, changed in [
        ("label", frame.assign(mu=frame["mu"] + 1e-3)),
        ("order", frame.iloc[::-1]),
        ("rows", frame.head(39)),
    ]:
        data = write_csv(tmp_path / f"{name}.csv", changed)
        with pytest.raises(ConfigError, match=r"is not the data .* was trained on"):
            prepare_run(make_tiny(data=data), resume=True)


@pytest.mark.parametrize(
    ("splits", "message"),
    [
        ({"train": [0, 1], "val": [2]}, "lacks \\['test'\\]"),
        ({"train": [0, 1], "val": [2], "test": [10**6]}, "outside the 40 molecules"),
        ({"train": [0, 1], "val": [2], "test": [-1]}, "outside the 40 molecules"),
        ({"train": [0, 1], "val": [1], "test": [3]}, "overlap or repeat"),
        ({"train": [0, 1.5], "val": [2], "test": [3]}, "list of integer indices"),
        ({"train": "0-30", "val": [2], "test": [3]}, "list of integer indices"),
        ([0, 1, 2], "JSON object"),
    ],
)
def test_a_tampered_splits_file_is_refused_on_resume(make_tiny, started, splits, message):
    (started / "splits.json").write_text(json.dumps(splits))
    with pytest.raises(RunDirError, match=message):
        prepare_run(make_tiny(), resume=True)


def test_an_interrupted_first_epoch_leaves_a_resumable_run(make_tiny, monkeypatch, tmp_path):
    uninterrupted = _train_weights(make_tiny(out=str(tmp_path / "whole")))

    def interrupt(run, epoch):
        raise KeyboardInterrupt

    monkeypatch.setattr("molmtl.training.trainer.run_epoch", interrupt)
    from molmtl.training import train

    with pytest.raises(KeyboardInterrupt):
        train(make_tiny())
    monkeypatch.undo()
    out = tmp_path / "run"
    assert not list(out.glob(".*.tmp"))
    resumed = _train_weights(make_tiny(), resume=True)
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)


def _train_weights(config, resume: bool = False) -> dict:
    from molmtl.training import train

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingWarning)
        run_dir = train(config, resume=resume)
    return torch.load(run_dir / "model.pt", weights_only=True)


def test_a_full_disk_at_a_checkpoint_keeps_the_previous_one(make_tiny, monkeypatch, tmp_path):
    from molmtl.training import checkpoint as checkpoints
    from molmtl.training import train

    real_save = checkpoints.atomic_torch_save
    calls = []

    def save_until_full(obj, path):
        calls.append(path)
        if len(calls) == 2:  # epoch 0 is written, epoch 1 meets a full disk
            raise OSError(28, "No space left on device")
        real_save(obj, path)

    monkeypatch.setattr(checkpoints, "atomic_torch_save", save_until_full)
    with pytest.raises(RunDirError, match="No space left on device; the previous checkpoint is"):
        train(make_tiny())
    kept = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert kept["run"]["epoch"] == 0


def test_a_copied_run_resumes_where_it_lies(make_tiny, started, tmp_path):
    shutil.copytree(started, tmp_path / "copy")
    run = prepare_run(make_tiny(out=str(tmp_path / "copy")), resume=True)
    assert RunDir(run.run_dir.path).is_run()


_SMILES = ["C", "CCO", "c1ccccc1", "CC(=O)N", "C1CC", "xx", "", "[Na+].[Cl-]", "CN=C=O", "O", "*"]
_CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "nan", "NA", "inf", "1e39", "abc", " 3 ", "True", "1" + "0" * 30]),
)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(st.sampled_from(_SMILES), _CELLS, _CELLS), max_size=24),
    st.sampled_from(["random", "scaffold"]),
)
def test_any_csv_prepares_a_sound_run_or_is_refused_in_one_line(tmp_path_factory, rows, split):
    folder = tmp_path_factory.mktemp("fuzz")
    text = "smiles,a,b\n" + "".join(f'"{s}",{a},{b}\n' for s, a, b in rows)
    (folder / "data.csv").write_text(text)
    config = TrainConfig.from_dict(
        {
            "dataset": "csv",
            "data": str(folder / "data.csv"),
            "targets": ["a", "b"],
            "split": split,
            "model": {"encoder": "gine", "hidden_dim": 4, "n_layers": 1, "out_dim": 4},
            "device": "cpu",
            "out": str(folder / "run"),
        }
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TrainingWarning)
            run = prepare_run(config)
    except ConfigError as error:
        assert "\n" not in str(error)
        assert not (folder / "run").exists()  # refused before anything was written
        return
    labelled = run.targets[~torch.isnan(run.targets)]
    assert torch.isfinite(labelled).all()
    assert all(len(part) for part in (run.split.train, run.split.val, run.split.test))
    assert (~torch.isnan(run.targets[run.split.train])).any(0).all()


def test_ctrl_c_inside_a_checkpoint_write_leaves_the_previous_one_and_no_temporary(
    make_tiny, monkeypatch, tmp_path
):
    from molmtl.training import train

    real_save, calls = torch.save, []

    def interrupted_save(obj, file, *args, **kwargs):
        calls.append(file)
        if len(calls) == 4:  # model and checkpoint of epoch 0, the model of epoch 1, then this
            raise KeyboardInterrupt
        real_save(obj, file, *args, **kwargs)

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        train(make_tiny())
    monkeypatch.undo()
    out = tmp_path / "run"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["run"]["epoch"] == 0
    _train_weights(make_tiny(), resume=True)
    assert torch.load(out / "checkpoint.pt", weights_only=True)["run"]["epoch"] == 1
