"""Generic CSV loading: row alignment, missing labels, errors; the domain fitted on a dataset."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

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


@pytest.mark.parametrize(
    ("cells", "rows"),
    [
        (["1", "inf", "3", "-inf"], "1, 3"),
        (["1", "1e39", "3", "4"], "1"),  # finite as text, infinite as float32
        (["Infinity", "2", "3", "4"], "0"),
    ],
)
def test_infinite_labels_are_refused_with_their_rows(tmp_path, cells, rows):
    path = tmp_path / "inf.csv"
    pd.DataFrame({"smiles": ["C", "CC", "CCC", "CCO"], "y": cells}).to_csv(path, index=False)
    with pytest.raises(
        ValueError, match=rf"column 'y' has infinite values .* data row\(s\) {rows} "
    ):
        load_csv(path)


def test_missing_label_texts_are_missing_in_a_text_column():
    # a huge integer makes pandas read the column as text, "nan" included
    frame = pd.DataFrame({"smiles": ["C", "CC", "CCC"], "y": ["1" + "0" * 30, "nan", "NA"]})
    assert load_csv(frame).mask.tolist() == [[True], [False], [False]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"smiles,y\nC,1\n\xff\xfe,2\n", "is not UTF-8 text \\(it holds the byte 0xff\\)"),
        (b'smiles,y\n"C,1\n', "cannot read CSV file"),
    ],
    ids=["empty", "latin-1", "unclosed-quote"],
)
def test_an_unreadable_csv_is_named(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"bad.csv.*{message}|{message}.*bad.csv"):
        load_csv(path)


def test_a_broken_archive_is_named(tmp_path):
    path = tmp_path / "table.csv.gz"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"cannot read CSV file .*table\.csv\.gz"):
        load_csv(path)


_CELLS = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=False, width=32))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    st.lists(st.tuples(st.sampled_from(["C", "CCO", "c1ccccc1", "xx", "CN"]), _CELLS), min_size=1),
    st.sampled_from(["plain.csv", "packed.csv.xz", "zipped.csv.gz"]),
)
def test_the_fingerprint_is_of_the_data_not_of_the_file(tmp_path_factory, rows, name):
    frame = pd.DataFrame(rows, columns=["smiles", "y"])
    path = tmp_path_factory.mktemp("fingerprint") / name
    frame.to_csv(path, index=False)
    reference = load_csv(frame)
    assert load_csv(path).fingerprint() == reference.fingerprint()
    if len(reference):
        changed = frame.assign(y=np.where(frame["y"].isna(), 1.0, np.nan))  # labels ↔ missing
        assert load_csv(changed).fingerprint() != reference.fingerprint()
    if len(reference) > 1 and len(set(reference.smiles)) > 1:
        assert load_csv(frame.iloc[::-1]).fingerprint() != reference.fingerprint()
