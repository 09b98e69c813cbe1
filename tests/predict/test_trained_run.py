"""A run directory written by the real trainer (1 epoch on 120 QM9 molecules) predicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from molmtl.predict import Predictor

QM9_CSV = Path(__file__).resolve().parents[1] / "fixtures" / "qm9" / "qm9.csv.xz"


@pytest.fixture(scope="module")
def trained_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from molmtl.training import TrainConfig, train

    scratch = tmp_path_factory.mktemp("trained")
    pd.read_csv(QM9_CSV, nrows=120)[["smiles", "mu", "gap"]].to_csv(
        scratch / "small.csv", index=False
    )
    config = TrainConfig(
        dataset="csv",
        data=str(scratch / "small.csv"),
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
