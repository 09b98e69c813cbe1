"""Ensembles: mean and standard deviation of the members, and members that must agree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from molmtl.predict import Predictor, PredictorError

SMILES = ["CCO", "xyz", "c1ccccc1", "", "CC(=O)O", "[Na+].[Cl-]", "OC1COC1"]


def test_mean_and_std_match_the_members(ensemble_run_dirs: list[Path]) -> None:
    ensemble = Predictor.load(ensemble_run_dirs, device="cpu", chunk_size=3, batch_size=2)
    frame = ensemble.predict(SMILES)
    members = np.stack(
        [
            Predictor.load(d, device="cpu").predict(SMILES)[ensemble.targets].to_numpy()
            for d in ensemble_run_dirs
        ]
    )  # [M, n, T]
    for task, target in enumerate(ensemble.targets):
        np.testing.assert_allclose(
            frame[target], members[:, :, task].mean(axis=0), rtol=1e-5, atol=1e-5
        )
        # ddof=0: the spread of the members themselves, as documented
        np.testing.assert_allclose(
            frame[target + "_std"], members[:, :, task].std(axis=0, ddof=0), rtol=1e-5, atol=1e-5
        )
    assert (frame.loc[frame["valid"], [t + "_std" for t in ensemble.targets]] > 0).all().all()


def test_ensemble_columns_pair_each_target_with_its_std(ensemble_run_dirs: list[Path]) -> None:
    ensemble = Predictor.load(ensemble_run_dirs, device="cpu")
    assert ensemble.is_ensemble
    assert ensemble.columns == [
        *["smiles", "valid", "error", "in_domain", "domain_note"],
        *["mu", "mu_std", "gap", "gap_std", "cv", "cv_std"],
    ]
    assert ensemble.column_units["gap_std"] == "eV"


def test_copies_of_one_model_have_zero_spread(run_dir: Path) -> None:
    ensemble = Predictor.load([run_dir, run_dir], device="cpu")
    single = Predictor.load(run_dir, device="cpu")
    frame = ensemble.predict(SMILES)
    np.testing.assert_allclose(
        frame[single.targets], single.predict(SMILES)[single.targets], rtol=1e-6
    )
    valid = frame["valid"]
    assert (frame.loc[valid, "mu_std"] == 0).all()
    assert frame.loc[~valid, "mu_std"].isna().all()


@pytest.mark.parametrize(
    "other_targets",
    [
        [{"name": "mu", "unit": "D"}, {"name": "gap", "unit": "eV"}],
        [
            {"name": "mu", "unit": "D"},
            {"name": "gap", "unit": "meV"},
            {"name": "cv", "unit": "cal/(mol K)"},
        ],
        [
            {"name": "gap", "unit": "eV"},
            {"name": "mu", "unit": "D"},
            {"name": "cv", "unit": "cal/(mol K)"},
        ],
    ],
)
def test_members_with_other_targets_are_refused(
    run_dir: Path, make_run_dir: Callable[..., Path], other_targets: list[dict]
) -> None:
    other = make_run_dir(seed=3, targets=other_targets)
    with pytest.raises(PredictorError, match="different targets") as raised:
        Predictor.load([run_dir, other], device="cpu")
    assert str(other) in str(raised.value)


def test_members_with_other_featurizers_are_refused(
    run_dir: Path, make_run_dir: Callable[..., Path]
) -> None:
    from molmtl import featurizers

    others = [name for name in featurizers.available() if name != "2d"]
    if not others:
        pytest.skip("only the 2d featurizer exists")
    other = make_run_dir(seed=3, featurizer=others[0])
    with pytest.raises(PredictorError, match="different featurizers"):
        Predictor.load([run_dir, other], device="cpu")


def test_no_run_dir_is_an_error() -> None:
    with pytest.raises(PredictorError, match="no run directory"):
        Predictor.load([])
