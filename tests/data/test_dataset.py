"""Generic CSV loading: row alignment, missing labels, errors; the domain fitted on a dataset."""

import numpy as np
import pandas as pd
import pytest
import torch

from molmtl import featurizers
from molmtl.data import load_csv
from molmtl.data.dataset import fit_domain

FRAME = pd.DataFrame(
    {
        "smiles": ["CCO", "C1CC", "c1ccccc1", "", "CC(=O)O", None, "CN"],
        "solubility": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0, 7.0],
        "logp": ["0.5", "", "2.5", "3.5", "", "5.5", "6.5"],
    }
)


@pytest.fixture(params=["frame", "csv"])
def source(request, tmp_path):
    if request.param == "frame":
        return FRAME
    path = tmp_path / "table.csv"
    FRAME.to_csv(path, index=False)
    return path


def test_rows_align_with_invalid_smiles_in_the_middle(source):
    dataset = load_csv(source, target_columns=["solubility", "logp"])
    assert dataset.source_rows.tolist() == [0, 2, 4, 6]
    assert dataset.smiles == ["CCO", "c1ccccc1", "CC(=O)O", "CN"]
    assert dataset.rejected["row"].tolist() == [1, 3, 5]
    assert "unparseable" in dataset.rejected["error"].iloc[0]
    expected = torch.tensor([[1.0, 0.5], [np.nan, 2.5], [5.0, np.nan], [7.0, 6.5]])
    torch.testing.assert_close(dataset.y, expected, equal_nan=True)
    assert dataset.mask.tolist() == [[True, True], [False, True], [True, False], [True, True]]
    for i, smiles in enumerate(dataset.smiles):
        assert torch.equal(dataset.graphs.get(i).x, featurizers.get().featurize(smiles).x)


def test_default_targets_are_all_other_columns():
    assert load_csv(FRAME).target_names == ["solubility", "logp"]


def test_subset_keeps_alignment():
    dataset = load_csv(FRAME)
    part = dataset.subset([3, 0])
    assert part.smiles == ["CN", "CCO"] and part.source_rows.tolist() == [6, 0]
    assert torch.equal(part.graphs.get(0).x, dataset.graphs.get(3).x)
    assert part.facts.heavy_atoms.tolist() == [2, 3]


#: chlorinated molecules next to QM9-like ones; rows 0-3 are the training rows of the tests
CHLORIDES = pd.DataFrame(
    {
        "smiles": ["CCCl", "ClC(Cl)Cl", "CCO", "c1ccccc1Cl", "CCBr", "[NH4+]", "CCCCCCCCCCCC"],
        "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
    }
)


@pytest.mark.parametrize("index", [[0, 1, 2, 3], np.arange(4), torch.arange(4)])
def test_fit_domain_learns_the_training_rows(index):
    dataset = load_csv(CHLORIDES)
    domain = fit_domain(dataset, index)
    assert domain.elements_ == ("H", "C", "O", "Cl") and domain.heavy_atoms_ == (3, 7)
    assert domain.n_molecules_ == 4
    assert domain.notes(dataset.facts) == [
        *[""] * 4,
        "element Br not seen in training",
        "element N not seen in training; 1 heavy atom, training had 3–7; "
        "atom charge +1, training had only 0; net charge +1, training had only 0",
        "12 heavy atoms, training had 3–7",
    ]


def test_fit_domain_without_index_takes_every_molecule():
    dataset = load_csv(CHLORIDES)
    assert fit_domain(dataset).contains(dataset.facts).all()
    assert fit_domain(dataset) == fit_domain(dataset, np.arange(len(dataset)))
    with pytest.raises(ValueError, match="0 molecules"):
        fit_domain(dataset, [])


def test_in_domain_is_the_qm9_reference_flag():
    dataset = load_csv(CHLORIDES)
    assert dataset.in_domain.tolist() == [False, False, True, False, False, False, False]
    assert dataset.subset([2, 0]).in_domain.tolist() == [True, False]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"smiles_column": "SMILES"}, ValueError, "SMILES column 'SMILES' not in the table"),
        ({"target_columns": ["nope"]}, ValueError, r"target column\(s\) \['nope'\]"),
        ({"target_columns": "logp"}, TypeError, "list of column names"),
        ({"featurizer": "5d"}, ValueError, "unknown featurizer"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        load_csv(FRAME, **kwargs)


def test_text_in_target_column_is_an_error():
    frame = FRAME.assign(logp=["1", "2", "high", "4", "5", "6", "7"])
    with pytest.raises(ValueError, match="'logp' has non-numeric value 'high' in data row 2"):
        load_csv(frame)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv"):
        load_csv("nowhere.csv")
