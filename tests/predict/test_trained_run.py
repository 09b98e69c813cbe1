"""A run directory written by the real trainer (1 epoch on a small CSV) predicts, and its
applicability domain is the one learned from its training split (chlorides included)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from molmtl.data import Split, load_csv
from molmtl.data.dataset import fit_domain
from molmtl.featurizers import ApplicabilityDomain
from molmtl.predict import Predictor
from molmtl.rundir import RunDir

QM9_CSV = Path(__file__).resolve().parents[1] / "fixtures" / "qm9" / "qm9.csv.xz"
#: chlorinated molecules (up to 9 heavy atoms) mixed into the QM9 rows, so the training split
#: surely has some: a model trained on them must not flag chlorine
CHLORIDES = [
    "CCCl",
    "ClCC(=O)O",
    "ClC(Cl)Cl",
    "OCCCl",
    "CC(Cl)C#N",
    "ClC1CC1",
    "NCCCl",
    "CCC(Cl)CO",
]


@pytest.fixture(scope="module")
def training_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = pd.read_csv(QM9_CSV, nrows=120)[["smiles", "mu", "gap"]]
    chlorides = pd.DataFrame({"smiles": CHLORIDES * 3, "mu": 1.5, "gap": 0.25})
    path = tmp_path_factory.mktemp("data") / "small.csv"
    pd.concat([frame, chlorides], ignore_index=True).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained_run_dir(tmp_path_factory: pytest.TempPathFactory, training_csv: Path) -> Path:
    from molmtl.training import TrainConfig, train

    scratch = tmp_path_factory.mktemp("trained")
    config = TrainConfig(
        dataset="csv",
        data=str(training_csv),
        targets=["mu", "gap"],
        split="random",
        epochs=1,
        batch_size=32,
        model={"encoder": "gine", "hidden_dim": 16, "n_layers": 1, "out_dim": 16},
        device="cpu",
        progress=False,
        cache_dir=str(scratch / "cache"),
        out=str(scratch / "run"),
    )
    return Path(train(config))


def test_trained_run_dir_predicts_row_aligned(trained_run_dir: Path) -> None:
    predictor = Predictor.load(trained_run_dir, device="cpu")
    assert predictor.targets == ["mu", "gap"]
    frame = predictor.predict(["CCO", "bad", "c1ccccc1"])
    assert frame["valid"].tolist() == [True, False, True]
    assert np.isfinite(frame.loc[[0, 2], ["mu", "gap"]].to_numpy()).all()
    assert frame.loc[1, ["mu", "gap"]].isna().all()


def test_stored_domain_is_learned_from_the_training_split(
    trained_run_dir: Path, training_csv: Path
) -> None:
    stored = json.loads((trained_run_dir / "config.json").read_text())["domain"]
    train = Split.from_dict(RunDir(trained_run_dir).read_splits()).train
    dataset = load_csv(training_csv, target_columns=["mu", "gap"])
    assert ApplicabilityDomain.from_dict(stored) == fit_domain(dataset, train)


def test_a_model_trained_on_chlorides_does_not_flag_chlorine(trained_run_dir: Path) -> None:
    predictor = Predictor.load(trained_run_dir, device="cpu")
    assert "Cl" in predictor.domains[0].elements_
    frame = predictor.predict(["ClCCCl", "CCBr", "CCCCCCCCCCCC"])
    assert frame["in_domain"].tolist() == [True, False, False]
    assert frame["domain_note"][0] == ""
    assert frame["domain_note"][1] == "element Br not seen in training"
    assert frame["domain_note"][2].startswith("12 heavy atoms, training had 1–")
