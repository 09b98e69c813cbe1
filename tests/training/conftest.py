"""Tiny training fixtures: a few hundred molecules of the committed QM9 fixture (tests/fixtures/qm9)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from molmtl.training import TrainConfig

QM9_CSV = Path(__file__).resolve().parents[1] / "fixtures" / "qm9" / "qm9.csv.xz"
#: three targets of very different scales (Debye, Hartree, bohr²)
TARGETS = ["mu", "homo", "r2"]
TINY_MODEL = {"encoder": "gine", "hidden_dim": 16, "n_layers": 2, "out_dim": 16}


@pytest.fixture(scope="session")
def qm9_csv(tmp_path_factory) -> Path:
    """200 QM9 molecules (SMILES and three targets) as a CSV."""
    frame = pd.read_csv(QM9_CSV, nrows=1200).iloc[::6]  # every 6th: more varied than the first 200
    path = tmp_path_factory.mktemp("data") / "qm9_small.csv"
    frame[["smiles", *TARGETS]].to_csv(path, index=False)
    return path


@pytest.fixture
def make_config(qm9_csv, tmp_path):
    """``make_config(**changes)``: a seconds-long CPU run on the small CSV, writing under tmp_path."""

    def make(**changes) -> TrainConfig:
        settings = {
            "dataset": "csv",
            "data": str(qm9_csv),
            "targets": TARGETS,
            "split": "random",
            "model": dict(TINY_MODEL),
            "epochs": 2,
            "batch_size": 32,
            "lr": 3e-3,
            "device": "cpu",
            "progress": False,
            "out": str(tmp_path / "run"),
        }
        settings.update(changes)
        return TrainConfig.from_dict(settings)

    return make


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory) -> Path:
    """40 QM9 molecules (SMILES and three targets): for runs that refuse, resume or evaluate."""
    frame = pd.read_csv(QM9_CSV, nrows=400).iloc[::10]
    path = tmp_path_factory.mktemp("tiny") / "tiny.csv"
    frame[["smiles", *TARGETS]].to_csv(path, index=False)
    return path


@pytest.fixture
def make_tiny(make_config, tiny_csv):
    """``make_tiny(**changes)``: ``make_config`` on the 40 molecules, one epoch, 8 wide."""

    def make(**changes) -> TrainConfig:
        model = {"encoder": "gine", "hidden_dim": 8, "n_layers": 1, "out_dim": 8}
        return make_config(**{"data": str(tiny_csv), "epochs": 1, "model": model, **changes})

    return make


def write_csv(path: Path, frame: pd.DataFrame) -> str:
    """Write ``frame`` to ``path`` as CSV and return the path as a string (a config's ``data``)."""
    frame.to_csv(path, index=False)
    return str(path)
