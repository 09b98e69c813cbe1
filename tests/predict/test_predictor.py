"""Predictor.predict: one row per input in input order, agreement with a one-by-one reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from molmtl.predict import Predictor, PredictorError

#: (input, valid, in_domain): invalid, empty, whitespace-only, non-string and out-of-domain
#: inputs mixed between valid ones, so any dropped or shifted row changes a neighbour
MIXED = [
    ("CCO", True, True),
    ("not-a-smiles", False, False),
    ("c1ccccc1", True, True),
    ("", False, False),
    ("CC(=O)O", True, True),
    ("   ", False, False),
    ("[Na+].[Cl-]", True, False),
    ("C1CC", False, False),
    ("CCCCCCCCCCCC", True, False),
    (None, False, False),
    ("C[Si](C)(C)C", True, False),
    ("[NH4+]", True, False),
    ("N#CC(F)(F)F", True, True),
    (3.5, False, False),
    ("OC1COC1", True, True),
]
MIXED_SMILES = [smiles for smiles, _, _ in MIXED]


@pytest.fixture(scope="module")
def predictor(run_dir: Path) -> Predictor:
    return Predictor.load(run_dir, device="cpu")


def one_by_one(predictor: Predictor, smiles: list) -> pd.DataFrame:
    """Slow obviously-aligned reference: every input predicted alone."""
    return pd.concat([predictor.predict([item]) for item in smiles], ignore_index=True)


@pytest.mark.parametrize(("chunk_size", "batch_size"), [(1, 1), (4, 2), (4, 1000), (1000, 3)])
def test_rows_align_with_inputs(run_dir: Path, chunk_size: int, batch_size: int) -> None:
    predictor = Predictor.load(run_dir, device="cpu", chunk_size=chunk_size, batch_size=batch_size)
    frame = predictor.predict(MIXED_SMILES)
    assert list(frame.columns) == [
        *["smiles", "valid", "error", "in_domain", "domain_note", "mu", "gap", "cv"]
    ]
    assert len(frame) == len(MIXED)
    assert frame["valid"].tolist() == [valid for _, valid, _ in MIXED]
    assert frame["in_domain"].tolist() == [in_domain for _, _, in_domain in MIXED]
    assert (frame["domain_note"] == "").tolist() == (frame["in_domain"] | ~frame["valid"]).tolist()
    assert (frame["error"] == "").tolist() == frame["valid"].tolist()
    assert frame.loc[frame["valid"], predictor.targets].notna().all().all()
    assert frame.loc[~frame["valid"], predictor.targets].isna().all().all()
    reference = one_by_one(Predictor.load(run_dir, device="cpu"), MIXED_SMILES)
    pd.testing.assert_frame_equal(frame, reference, rtol=1e-5)


def test_errors_say_why(predictor: Predictor) -> None:
    errors = dict(zip(MIXED_SMILES[:6], predictor.predict(MIXED_SMILES[:6])["error"], strict=True))
    assert "unparseable" in errors["not-a-smiles"]
    assert "empty" in errors[""]
    assert "whitespace" in errors["   "]


def test_permuting_inputs_permutes_rows(predictor: Predictor) -> None:
    order = np.random.default_rng(0).permutation(len(MIXED_SMILES))
    frame = predictor.predict(MIXED_SMILES)
    permuted = predictor.predict([MIXED_SMILES[i] for i in order])
    pd.testing.assert_frame_equal(permuted, frame.iloc[order].reset_index(drop=True), rtol=1e-5)


@pytest.mark.parametrize(
    "spellings",
    [
        ("c1ccccc1", "C1=CC=CC=C1", "C1C=CC=CC=1"),
        ("CCO", "OCC", "C(O)C"),
        ("c1ccncc1", "C1=CC=NC=C1", "n1ccccc1"),
        ("Cc1ccccc1O", "Oc1ccccc1C", "OC1=C(C)C=CC=C1"),
        ("CC(=O)N", "NC(C)=O", "O=C(N)C"),
        ("c1cc[nH]c1", "C1=CNC=C1"),
    ],
)
def test_same_molecule_same_prediction(predictor: Predictor, spellings: tuple[str, ...]) -> None:
    frame = predictor.predict(list(spellings))
    assert frame["valid"].all()
    values = frame[predictor.targets].to_numpy()
    np.testing.assert_allclose(
        values, np.broadcast_to(values[0], values.shape), rtol=1e-5, atol=1e-5
    )


def test_single_string_gives_one_row(predictor: Predictor) -> None:
    frame = predictor.predict("CCO")
    pd.testing.assert_frame_equal(frame, predictor.predict(["CCO"]))
    assert len(frame) == 1


def test_series_keeps_its_index(predictor: Predictor) -> None:
    series = pd.Series(MIXED_SMILES, index=[f"mol{i}" for i in range(len(MIXED_SMILES))])
    frame = predictor.predict(series)
    assert frame.index.equals(series.index)
    pd.testing.assert_frame_equal(frame.reset_index(drop=True), predictor.predict(MIXED_SMILES))


def test_empty_input_gives_empty_frame(predictor: Predictor) -> None:
    frame = predictor.predict([])
    assert list(frame.columns) == predictor.columns
    assert len(frame) == 0


@pytest.mark.parametrize("bad", [5, b"CCO", {"smiles": "CCO"}])
def test_non_sequence_input_is_a_type_error(predictor: Predictor, bad: object) -> None:
    with pytest.raises(TypeError, match="a list of strings, a pandas Series or DataFrame"):
        predictor.predict(bad)


def test_targets_and_units(predictor: Predictor) -> None:
    assert predictor.targets == ["mu", "gap", "cv"]
    assert predictor.units == ["D", "eV", "cal/(mol K)"]
    assert predictor.column_units == {"mu": "D", "gap": "eV", "cv": "cal/(mol K)"}


def test_predictions_are_in_physical_units(run_dir: Path, predictor: Predictor) -> None:
    from molmtl.models import load_model

    model, _ = load_model(run_dir)
    graphs = predictor.featurizer.featurize_many(["CCO"]).graphs
    with torch.inference_mode():
        standardized = model(graphs.batch(torch.arange(1))).numpy()
    expected = standardized * model.target_std.numpy() + model.target_mean.numpy()
    np.testing.assert_allclose(
        predictor.predict("CCO")[predictor.targets].to_numpy(), expected, rtol=1e-5
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("chunk_size", 0), ("batch_size", -1), ("chunk_size", 2.5), ("n_jobs", 0), ("n_jobs", -2)],
)
def test_bad_settings_are_named(run_dir: Path, name: str, value: object) -> None:
    with pytest.raises(PredictorError, match=name):
        Predictor.load(run_dir, **{name: value})


@pytest.mark.parametrize("device", ["gpu", "cuda:0"])
def test_unusable_device_is_named(run_dir: Path, device: str) -> None:
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(PredictorError, match=device):
        Predictor.load(run_dir, device=device)


@pytest.fixture(scope="module")
def predictor_3d(make_run_dir) -> Predictor:
    """The 3D featurizer generates a seeded conformer for each SMILES."""
    tiny_mpnn = {
        "encoder": "mpnn",
        "hidden_dim": 8,
        "edge_hidden_dim": 8,
        "n_iterations": 1,
        "set2set_steps": 1,
    }
    return Predictor.load(
        make_run_dir(seed=0, featurizer="3d", model_config=tiny_mpnn), device="cpu"
    )


def test_3d_rows_align_with_inputs(predictor_3d: Predictor) -> None:
    frame = predictor_3d.predict(MIXED_SMILES)
    assert len(frame) == len(MIXED)
    # the 3D featurizer refuses elements outside H, C, N, O, F, and says so; the rest as in 2D
    valid_2d = np.array([valid for _, valid, _ in MIXED])
    refused = frame[valid_2d & ~frame["valid"]]
    assert refused["smiles"].tolist() == ["[Na+].[Cl-]", "C[Si](C)(C)C"]
    assert refused["error"].str.contains("unsupported").all()
    assert not (frame["valid"] & ~valid_2d).any()
    pd.testing.assert_frame_equal(frame, one_by_one(predictor_3d, MIXED_SMILES), rtol=1e-5)


@pytest.mark.parametrize(
    "spellings", [("c1ccccc1", "C1=CC=CC=C1"), ("CCO", "OCC"), ("c1ccncc1", "n1ccccc1")]
)
def test_3d_same_molecule_same_prediction(
    predictor_3d: Predictor, spellings: tuple[str, ...]
) -> None:
    values = predictor_3d.predict(list(spellings))[predictor_3d.targets].to_numpy()
    np.testing.assert_allclose(
        values, np.broadcast_to(values[0], values.shape), rtol=1e-4, atol=1e-4
    )


@pytest.mark.gpu
def test_cuda_agrees_with_cpu(run_dir: Path, predictor: Predictor) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    on_gpu = Predictor.load(run_dir, device="cuda")
    pd.testing.assert_frame_equal(
        on_gpu.predict(MIXED_SMILES), predictor.predict(MIXED_SMILES), rtol=1e-4, atol=1e-5
    )


def test_a_dataframe_gives_its_smiles_column_not_its_column_names(predictor: Predictor) -> None:
    frame = pd.DataFrame(
        {"id": ["a", "b", "c"], "SMILES": ["CCO", "not-a-smiles", "OC1COC1"]}, index=[7, 3, 5]
    )
    expected = predictor.predict(["CCO", "not-a-smiles", "OC1COC1"])
    for result in (predictor.predict(frame), predictor.predict(frame, smiles_column="SMILES")):
        assert result.index.tolist() == [7, 3, 5]
        assert result["smiles"].tolist() == frame["SMILES"].tolist()
        np.testing.assert_array_equal(result[predictor.targets], expected[predictor.targets])


@pytest.mark.parametrize(
    ("frame", "smiles_column", "message"),
    [
        (pd.DataFrame({"id": [1], "name": ["CCO"]}), None, "no column named 'smiles'"),
        (pd.DataFrame({"smiles": ["C"], "Smiles": ["O"]}), None, "several SMILES columns"),
        (pd.DataFrame({"smiles": ["C"]}), "mol", "no column 'mol'"),
        (pd.DataFrame([["C", "O"]], columns=["s", "s"]), "s", "several columns named 's'"),
    ],
)
def test_a_dataframe_without_one_clear_smiles_column_is_refused(
    predictor: Predictor, frame: pd.DataFrame, smiles_column: str | None, message: str
) -> None:
    with pytest.raises(PredictorError, match=message):
        predictor.predict(frame, smiles_column=smiles_column)


def test_smiles_column_is_only_for_a_dataframe(predictor: Predictor) -> None:
    with pytest.raises(PredictorError, match="applies to a DataFrame"):
        predictor.predict(["CCO"], smiles_column="smiles")


@pytest.mark.parametrize(
    "container",
    [list, tuple, np.array, lambda items: (item for item in items), pd.Index, pd.array],
)
def test_ordered_containers_of_strings_agree(predictor: Predictor, container) -> None:
    smiles = ["OC1COC1", "CCO", "C1CC", "c1ccccc1"]
    result = predictor.predict(container(smiles))
    expected = predictor.predict(smiles)
    assert result["smiles"].tolist() == smiles
    np.testing.assert_array_equal(result[predictor.targets], expected[predictor.targets])


@pytest.mark.parametrize(
    "bad", [{"CCO", "CC"}, frozenset({"CCO"}), np.array([["CCO"]]), bytearray(b"C")]
)
def test_unordered_or_multidimensional_input_is_refused(predictor: Predictor, bad: object) -> None:
    with pytest.raises(TypeError, match="smiles must be"):
        predictor.predict(bad)


def test_non_string_items_are_invalid_rows_in_place(predictor: Predictor) -> None:
    items = ["CCO", 5, b"CCO", pd.NaT, np.float32("nan"), ["C"], "OC1COC1"]
    result = predictor.predict(pd.Series(items, index=list("abcdefg")))
    assert result.index.tolist() == list("abcdefg")
    assert result["valid"].tolist() == [True, False, False, False, False, False, True]
    assert result["error"].tolist()[1:3] == [
        "SMILES must be a string, got int 5",
        "SMILES must be a string, got bytes b'CCO'",
    ]
    assert result["error"].tolist()[3:5] == ["empty SMILES", "empty SMILES"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_size": 10**9}, "batch_size must be an integer from 1 to 100,000"),
        ({"batch_size": 0}, "batch_size must be an integer"),
        ({"chunk_size": 10**8}, "chunk_size must be an integer from 1 to 1,000,000"),
        ({"chunk_size": 2.5}, "chunk_size must be an integer"),
        ({"n_jobs": 99_999}, "n_jobs must be an integer from 1 to 1024"),
        ({"n_jobs": 0}, "n_jobs must be an integer"),
        ({"n_jobs": -5}, "n_jobs must be an integer"),
        ({"device": "meta"}, "not supported for prediction"),
        ({"device": "mps"}, "not supported for prediction"),
        ({"device": "cuda:banana"}, "unknown device"),
    ],
)
def test_absurd_settings_are_refused_before_any_model_is_read(
    tmp_path: Path, options: dict, message: str
) -> None:
    # the run directory does not exist: the setting must be refused first
    with pytest.raises(PredictorError, match=message):
        Predictor.load(tmp_path / "no-such-run", **options)


def test_every_way_of_writing_a_molecule_gets_identical_predictions(predictor: Predictor) -> None:
    from rdkit import Chem

    for smiles in ["CC(=O)Oc1ccccc1C(=O)O", "C[C@H](N)C(=O)O", "OC1COC1", "N#CC(F)(F)F"]:
        variants = list(
            dict.fromkeys(Chem.MolToRandomSmilesVect(Chem.MolFromSmiles(smiles), 12, randomSeed=7))
        )
        assert len(variants) > 3
        together = predictor.predict(variants)[predictor.targets].to_numpy()
        alone = np.vstack([predictor.predict(v)[predictor.targets].to_numpy() for v in variants])
        assert (together == together[0]).all(), smiles
        assert (alone == alone[0]).all(), smiles


ITEMS = st.one_of(
    st.sampled_from(["CCO", "c1ccccc1", "OC1COC1", "N#CC(F)(F)F", "C1CC", "", "[Na+].[Cl-]"]),
    st.text(st.characters(codec=None), max_size=12),  # lone surrogates, NUL, any script
    st.none(),
    st.integers(),
    st.floats(),
)


@pytest.fixture(scope="module")
def chunked(run_dir: Path) -> dict[int, Predictor]:
    """Predictors that featurize 1 to 4 molecules at a time: rows cross chunk borders."""
    return {size: Predictor.load(run_dir, device="cpu", chunk_size=size) for size in range(1, 5)}


@settings(max_examples=20, deadline=None, derandomize=True, database=None)
@given(items=st.lists(ITEMS, max_size=10), chunk_size=st.integers(1, 4))
def test_rows_stay_aligned_whatever_the_items(
    chunked: dict[int, Predictor], items: list[object], chunk_size: int
) -> None:
    predictor = chunked[chunk_size]
    index = pd.Index([f"row{i}" for i in range(len(items))])
    result = predictor.predict(pd.Series(items, index=index, dtype=object))
    assert result.index.equals(index)
    for position, item in enumerate(items):
        alone = predictor.predict([item])
        assert result["valid"].iloc[position] == alone["valid"].iloc[0]
        assert result["error"].iloc[position] == alone["error"].iloc[0]
        np.testing.assert_allclose(
            result[predictor.targets].iloc[position], alone[predictor.targets].iloc[0], rtol=1e-5
        )
