"""The predictor's in_domain and domain_note: from the domain stored in the run directory, the
QM9 fallback for runs that store none, and ensembles (outside when outside for any member)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from molmtl import featurizers
from molmtl.featurizers import ApplicabilityDomain
from molmtl.models import RunDirError
from molmtl.predict import Predictor, PredictorError
from molmtl.predict._domain import NO_STORED_DOMAIN

SMILES = ["CCCl", "CCBr", "not-a-smiles", "CCO", "CCCCCCCCCCCC", "[Na+].[Cl-]"]


def domain_of(smiles: list[str]) -> ApplicabilityDomain:
    return ApplicabilityDomain().fit(featurizers.get("2d").featurize_many(smiles).facts)


CHLORIDES = domain_of(["CCCl", "ClC(Cl)Cl", "CCO", "c1ccccc1Cl"])
BROMIDES = domain_of(["CCBr", "BrC(Br)Br", "CCO", "c1ccccc1Br"])


@pytest.fixture(scope="module")
def chloride_run(make_run_dir: Callable[..., Path]) -> Path:
    return make_run_dir(seed=0, domain=CHLORIDES)


@pytest.fixture(scope="module")
def bromide_run(make_run_dir: Callable[..., Path]) -> Path:
    return make_run_dir(seed=1, domain=BROMIDES)


def test_stored_domain_decides(chloride_run: Path) -> None:
    predictor = Predictor.load(chloride_run, device="cpu")
    assert predictor.domains == [CHLORIDES]
    frame = predictor.predict(SMILES)
    assert frame["in_domain"].tolist() == [True, False, False, True, False, False]
    assert frame["domain_note"].tolist() == [
        "",
        "element Br not seen in training",
        "",  # invalid: the reason is in `error`
        "",
        "12 heavy atoms, training had 3–7",
        "element Na not seen in training; 2 heavy atoms, training had 3–7; "
        "atom charges -1 and +1, training had only 0; 2 fragments, training had at most 1",
    ]
    assert list(frame.columns[:5]) == ["smiles", "valid", "error", "in_domain", "domain_note"]


def test_run_without_domain_falls_back_to_qm9_and_says_so(run_dir: Path) -> None:
    assert "domain" not in json.loads((run_dir / "config.json").read_text())
    predictor = Predictor.load(run_dir, device="cpu")
    assert predictor.domains == [None]
    notes = predictor.predict(SMILES)["domain_note"].tolist()
    assert notes[0] == f"element Cl not seen in QM9; {NO_STORED_DOMAIN}"
    assert notes[3] == ""
    assert notes[4] == f"12 heavy atoms, QM9 had 1–9; {NO_STORED_DOMAIN}"


def test_ensemble_is_outside_when_any_member_is(chloride_run: Path, bromide_run: Path) -> None:
    frame = Predictor.load([chloride_run, bromide_run], device="cpu").predict(SMILES)
    assert frame["in_domain"].tolist() == [False, False, False, True, False, False]
    assert frame["domain_note"][0] == "element Cl not seen in training"
    assert frame["domain_note"][1] == "element Br not seen in training"
    # both members give this reason; it is said once
    assert frame["domain_note"][4] == "12 heavy atoms, training had 3–7"


def test_ensemble_with_a_member_without_domain(chloride_run: Path, run_dir: Path) -> None:
    notes = Predictor.load([chloride_run, run_dir], device="cpu").predict(["CCCl", "CCBr"])
    assert notes["domain_note"].tolist() == [
        f"element Cl not seen in QM9; {NO_STORED_DOMAIN}",
        f"element Br not seen in training; element Br not seen in QM9; {NO_STORED_DOMAIN}",
    ]


def test_predict_file_writes_the_notes(chloride_run: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("smiles\n" + "\n".join(f'"{s}"' for s in SMILES) + "\n")
    out = tmp_path / "out.csv"
    predictor = Predictor.load(chloride_run, device="cpu")
    summary = predictor.predict_file(source, out)
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert written["pred_domain_note"].tolist() == predictor.predict(SMILES)["domain_note"].tolist()
    assert summary.n_out_of_domain == 3


def test_unreadable_stored_domain_names_the_file(fresh_run_dir: Path) -> None:
    config_path = fresh_run_dir / "config.json"
    config = json.loads(config_path.read_text())
    config["domain"] = {"format": 1, "reference": "training"}
    # as a run directory written before the settings checksums (those refuse any edit first)
    config.pop("settings_sha256", None)
    config_path.write_text(json.dumps(config))
    with pytest.raises(RunDirError, match=r"config\.json: invalid 'domain'.*lacks"):
        Predictor.load(fresh_run_dir, device="cpu")


def test_one_domain_per_model(run_dir: Path) -> None:
    predictor = Predictor.load(run_dir, device="cpu")
    with pytest.raises(PredictorError, match="1 models but 2 domains"):
        Predictor(
            predictor.models,
            predictor.featurizer,
            predictor.targets,
            predictor.units,
            domains=[CHLORIDES, BROMIDES],
        )


#: valid molecules of QM9's elements and size that QM9 has no example of: each must be flagged
UNSEEN_KINDS = {
    "[CH3]": "radical",
    "C[CH2]": "radical",
    "C[O]": "radical",
    "[13CH4]": "isotope",
    "[2H]C": "isotope",
    "OC([2H])([2H])C": "isotope",
    "CC.O": "fragments",
    "C.C": "fragments",
    "[NH4+].[OH-]": "fragments",
}


@pytest.mark.parametrize("stored", [True, False], ids=["stored-domain", "qm9-fallback"])
def test_radicals_isotopes_and_several_fragments_are_outside(
    make_run_dir: Callable[..., Path], run_dir: Path, stored: bool
) -> None:
    qm9_like = domain_of(["C", "CCO", "OC1COC1", "c1ccccc1", "N#CC(F)(F)F", "CC(=O)O"])
    directory = make_run_dir(seed=3, domain=qm9_like) if stored else run_dir
    frame = Predictor.load(directory, device="cpu").predict([*UNSEEN_KINDS, "CCO"])
    assert frame["valid"].all()
    assert frame["in_domain"].tolist() == [False] * len(UNSEEN_KINDS) + [True]
    for note, kind in zip(frame["domain_note"], UNSEEN_KINDS.values(), strict=False):
        assert kind.rstrip("s") in note
