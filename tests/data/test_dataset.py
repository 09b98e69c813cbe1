"""Generic CSV loading: row alignment, missing labels, errors."""

import numpy as np
import pandas as pd
import pytest
import torch

from molmtl import featurizers
from molmtl.data import load_csv

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
