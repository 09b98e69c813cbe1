"""ApplicabilityDomain: properties of fit / contains / notes / to_dict over shared SMILES sets."""

import itertools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from molmtl import featurizers
from molmtl.featurizers import QM9_DOMAIN, ApplicabilityDomain, InvalidMoleculeError, MoleculeFacts
from tests.featurizers.molecule_sets import DOMAIN_SETS

FEATURIZER = featurizers.get("2d")
QM9_CSV = Path(__file__).resolve().parents[1] / "fixtures" / "qm9" / "qm9.csv.xz"
#: every molecule of every set: what each fitted domain is probed with
PROBES = list(dict.fromkeys(itertools.chain.from_iterable(DOMAIN_SETS.values())))
SET_NAMES = list(DOMAIN_SETS)


def facts_of(smiles: list[str]) -> MoleculeFacts:
    result = FEATURIZER.featurize_many(smiles)
    assert result.valid.all(), result.errors
    return result.facts


PROBE_FACTS = facts_of(PROBES)


def fitted(name: str) -> ApplicabilityDomain:
    return ApplicabilityDomain().fit(facts_of(DOMAIN_SETS[name]))


@pytest.mark.parametrize("name", SET_NAMES)
def test_training_molecules_are_inside(name):
    domain = fitted(name)
    assert domain.contains(facts_of(DOMAIN_SETS[name])).all()
    assert [domain.explain(smiles) for smiles in DOMAIN_SETS[name]] == [""] * len(DOMAIN_SETS[name])


@pytest.mark.parametrize("name", SET_NAMES)
def test_a_note_is_empty_exactly_inside(name):
    domain = fitted(name)
    notes = domain.notes(PROBE_FACTS)
    assert [note == "" for note in notes] == domain.contains(PROBE_FACTS).tolist()
    assert notes == ["; ".join(reasons) for reasons in domain.reasons(PROBE_FACTS)]
    assert notes == [domain.explain(smiles) for smiles in PROBES]


@pytest.mark.parametrize("name", SET_NAMES)
def test_to_dict_round_trips_through_json(name):
    domain = fitted(name)
    stored = json.loads(json.dumps(domain.to_dict()))
    restored = ApplicabilityDomain.from_dict(stored)
    assert restored == domain and restored.to_dict() == domain.to_dict()
    assert restored.notes(PROBE_FACTS) == domain.notes(PROBE_FACTS)


@pytest.mark.parametrize("name", SET_NAMES)
def test_fit_ignores_the_order_of_the_molecules(name):
    facts = facts_of(DOMAIN_SETS[name])
    order = np.random.default_rng(0).permutation(len(facts))
    assert ApplicabilityDomain().fit(facts.select(order)) == ApplicabilityDomain().fit(facts)


@pytest.mark.parametrize(("first", "second"), list(itertools.combinations(SET_NAMES, 2)))
def test_more_training_molecules_never_shrink_the_domain(first, second):
    union = ApplicabilityDomain().fit(facts_of(DOMAIN_SETS[first] + DOMAIN_SETS[second]))
    for name in (first, second):
        assert not (fitted(name).contains(PROBE_FACTS) & ~union.contains(PROBE_FACTS)).any()


#: probe → note of the domain fitted on the "qm9-like" set (1–6 heavy atoms, charges -1..+1)
QM9_LIKE_NOTES = {
    "CCCl": "element Cl not seen in training",
    "ClC(Br)I": "elements Cl, Br, I not seen in training",
    "CCCCCCCCCCCC": "12 heavy atoms, training had 1–6",
    "[H][H]": "0 heavy atoms, training had 1–6",
    "C[NH3+]": "net charge +1, training had only 0",
    "[CH3]": "1 radical electron, training had none",
    "[2H]C([2H])C": "2 isotope-labelled atoms, training had none",
    "[Na+].[Cl-]": "elements Na, Cl not seen in training; 2 fragments, training had at most 1",
    "[Mg+2]": "element Mg not seen in training; atom charge +2, training had -1 to +1; "
    "net charge +2, training had only 0",
    "CCO": "",
}


@pytest.mark.parametrize(("smiles", "note"), QM9_LIKE_NOTES.items())
def test_notes_say_why(smiles, note):
    assert fitted("qm9-like").explain(smiles) == note


def test_a_model_trained_on_chlorides_accepts_chlorine():
    domain = fitted("halogenated")
    assert "Cl" in domain.elements_
    assert domain.explain("ClCCCl") == ""
    assert domain.explain("CCS") == "element S not seen in training"


def test_reference_names_the_training_set_in_notes():
    domain = ApplicabilityDomain(reference="the solubility set").fit(facts_of(["CCO"]))
    assert domain.explain("CCCl") == "element Cl not seen in the solubility set"
    assert ApplicabilityDomain.from_dict(domain.to_dict()).reference == "the solubility set"


def test_qm9_domain_is_qm9s_chemistry():
    facts = facts_of(pd.read_csv(QM9_CSV)["smiles"].tolist())
    assert QM9_DOMAIN.contains(facts).all()
    learned = ApplicabilityDomain().fit(facts)
    assert set(learned.elements_) <= set(QM9_DOMAIN.elements_) == {"H", "C", "N", "O", "F"}
    assert QM9_DOMAIN.explain("CCCl") == "element Cl not seen in QM9"
    assert QM9_DOMAIN.heavy_atoms_ == (1, 9) and QM9_DOMAIN.net_charges_ == (0,)


def test_fit_on_110000_molecules_takes_well_under_two_seconds():
    facts = facts_of(pd.read_csv(QM9_CSV)["smiles"].tolist())
    many = facts.select(np.resize(np.arange(len(facts)), 110_000))
    start = time.perf_counter()
    domain = ApplicabilityDomain().fit(many)
    assert time.perf_counter() - start < 1.0 and domain.n_molecules_ == 110_000


def test_empty_training_set_is_refused():
    with pytest.raises(ValueError, match="0 molecules"):
        ApplicabilityDomain().fit(facts_of([]))


def test_unfitted_domain_says_so():
    with pytest.raises(ValueError, match="not fitted"):
        ApplicabilityDomain().contains(PROBE_FACTS)
    assert repr(ApplicabilityDomain()) == "ApplicabilityDomain(reference='training')"


def test_explain_reports_invalid_smiles():
    with pytest.raises(InvalidMoleculeError, match="unparseable"):
        QM9_DOMAIN.explain("C1CC")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("heavy_atoms"), r"lacks \['heavy_atoms'\]"),
        (lambda d: d.update(format=99), "format 99 is not 1"),
        (lambda d: d.update(elements=["C", "Xx"]), r"unknown element symbol\(s\) \['Xx'\]"),
        (lambda d: d.update(heavy_atoms=[1]), "malformed value"),
        (lambda d: d.update(max_fragments=None), "malformed value"),
    ],
)
def test_bad_stored_domain_is_named(change, message):
    stored = QM9_DOMAIN.to_dict()
    change(stored)
    with pytest.raises(ValueError, match=message):
        ApplicabilityDomain.from_dict(stored)


def test_a_stored_domain_is_a_dict():
    with pytest.raises(ValueError, match="is a dict, got list"):
        ApplicabilityDomain.from_dict([])
