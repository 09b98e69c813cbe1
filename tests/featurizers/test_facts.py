"""MoleculeFacts: the per-molecule chemistry computed at featurization."""

import numpy as np
import pytest

from molmtl import featurizers
from molmtl.featurizers import MoleculeFacts
from molmtl.featurizers.facts import ELEMENT_SYMBOLS
from tests.featurizers.molecule_sets import DIVERSE_SMILES

FEATURIZER = featurizers.get("2d")


def facts_of(smiles: list[str]) -> MoleculeFacts:
    result = FEATURIZER.featurize_many(smiles)
    assert result.valid.all(), result.errors
    return result.facts


def element_symbols(facts: MoleculeFacts, row: int) -> list[str]:
    return [ELEMENT_SYMBOLS[z] for z in np.flatnonzero(facts.elements[row])]


#: SMILES → (elements, heavy atoms, min / max atom charge, net charge, radicals, isotopes,
#: fragments)
EXPECTED = {
    "CCO": (["H", "C", "O"], 3, 0, 0, 0, 0, 0, 1),
    "ClCl": (["Cl"], 2, 0, 0, 0, 0, 0, 1),
    "[H][H]": (["H"], 0, 0, 0, 0, 0, 0, 1),
    "[Na+].[Cl-]": (["Na", "Cl"], 2, -1, 1, 0, 0, 0, 2),
    "[NH3+]CC([O-])=O": (["H", "C", "N", "O"], 5, -1, 1, 0, 0, 0, 1),
    "C[NH3+]": (["H", "C", "N"], 2, 0, 1, 1, 0, 0, 1),
    "[CH2]C": (["H", "C"], 2, 0, 0, 0, 1, 0, 1),
    "[2H]C([2H])C": (["H", "C"], 2, 0, 0, 0, 0, 2, 1),
    "[Mg+2]": (["Mg"], 1, 2, 2, 2, 0, 0, 1),
    "C.C.O": (["H", "C", "O"], 3, 0, 0, 0, 0, 0, 3),
    "C1.C1": (["H", "C"], 2, 0, 0, 0, 0, 0, 1),  # a ring-closure bond across '.': one molecule
}


@pytest.mark.parametrize(("smiles", "expected"), EXPECTED.items())
def test_facts_of_known_molecules(smiles, expected):
    facts = facts_of([smiles])
    symbols, *counts = expected
    assert element_symbols(facts, 0) == symbols
    names = MoleculeFacts.scalar_names()
    assert {name: int(getattr(facts, name)[0]) for name in names} == dict(
        zip(names, counts, strict=True)
    )


@pytest.mark.parametrize(
    "spellings",
    [
        ("CCO", "[CH3][CH2][OH]", "OCC"),
        ("c1ccccc1", "[cH]1[cH][cH][cH][cH][cH]1"),
        ("CC(=O)[O-].[Na+]", "[Na+].[O-]C(C)=O"),
        ("ClCCl", "[Cl]C[Cl]"),
    ],
)
def test_spellings_of_one_molecule_have_the_same_facts(spellings):
    facts = facts_of(list(spellings))
    for name, values in facts.arrays().items():
        assert (values == values[0]).all(), name


def test_a_molecule_has_the_same_facts_alone_and_in_a_batch():
    together = facts_of(DIVERSE_SMILES)
    alone = MoleculeFacts.concatenate([facts_of([smiles]) for smiles in DIVERSE_SMILES])
    for name, values in together.arrays().items():
        np.testing.assert_array_equal(values, getattr(alone, name), err_msg=name)


def test_select_and_arrays_round_trip():
    facts = facts_of(DIVERSE_SMILES)
    order = np.random.default_rng(0).permutation(len(facts))
    picked = facts.select(order)
    assert len(picked) == len(facts) and repr(picked) == f"MoleculeFacts({len(facts)} molecules)"
    back = MoleculeFacts.from_arrays(picked.arrays()).select(np.argsort(order))
    for name, values in facts.arrays().items():
        np.testing.assert_array_equal(values, getattr(back, name), err_msg=name)
    assert len(MoleculeFacts.concatenate([])) == 0


def test_3d_and_2d_featurizers_give_the_same_facts():
    smiles = ["C", "CCO", "c1ccoc1", "[NH3+]CC([O-])=O"]
    facts_3d = featurizers.get("3d").featurize_many(smiles).facts
    for name, values in facts_of(smiles).arrays().items():
        np.testing.assert_array_equal(values, getattr(facts_3d, name), err_msg=name)
