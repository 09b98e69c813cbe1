"""What the featurizers refuse before expensive work: over-long SMILES, too many heavy atoms,
characters no SMILES holds, absurd worker counts; and that no input of any kind raises."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from molmtl import featurizers
from molmtl.featurizers import Featurizer, InvalidMoleculeError, parse_smiles
from molmtl.featurizers._base import (
    MAX_HEAVY_ATOMS,
    MAX_N_JOBS,
    MAX_SMILES_LENGTH,
    SHOWN_SMILES_LENGTH,
)
from molmtl.featurizers.graph3d import MAX_HEAVY_ATOMS_3D

FEATURIZER_2D = featurizers.get("2d")
FEATURIZER_3D = featurizers.get("3d")
PROPERTY = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

#: printable ASCII SMILES pieces, so random strings are often almost-SMILES
SMILES_ALPHABET = st.sampled_from(list("CNOSPFIBrcnos()[]=#@+-.123456789%/\\*H:"))
#: anything a str can hold: lone surrogates (undecodable bytes), NUL, controls, non-ASCII
ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=40)


@pytest.mark.parametrize(
    ("smiles", "reason"),
    [
        ("C" * (MAX_SMILES_LENGTH + 1), f"longer than the limit of {MAX_SMILES_LENGTH}"),
        ("C" * (MAX_HEAVY_ATOMS + 1), f"larger than the limit of {MAX_HEAVY_ATOMS}"),
        ("C\udcff", r"character '\\udcff' at position 1"),  # the byte 0xff, surrogate-escaped
        ("C\ud800C", r"character '\\ud800'"),  # a lone surrogate no byte maps to
        ("C\x00C", r"character '\\x00'"),
        ("C\x1b[31mC", r"character '\\x1b'"),
        ("CÇ", "character 'Ç'"),
        ("ＣＣＯ", "character 'Ｃ' at position 0"),  # fullwidth letters look like SMILES
    ],
)
def test_over_limit_or_foreign_input_is_one_invalid_row(smiles: str, reason: str) -> None:
    result = FEATURIZER_2D.featurize_many(["CCO", smiles, "CC"])
    assert result.valid.tolist() == [True, False, True]
    assert re.search(reason, result.errors[1])
    assert "\n" not in result.errors[1] and len(result.errors[1]) < 300


def test_limits_are_checked_before_expensive_work() -> None:
    started = time.perf_counter()
    result = FEATURIZER_2D.featurize_many(["C" * 100_000, "C" * 4_000 + "(C)" * 330])
    assert not result.valid.any()
    assert time.perf_counter() - started < 1.0  # a 100,000-character chain took 98 s


def test_molecules_at_the_limits_are_accepted() -> None:
    at_limit = "C" * MAX_HEAVY_ATOMS
    assert parse_smiles(at_limit).GetNumHeavyAtoms() == MAX_HEAVY_ATOMS
    assert FEATURIZER_2D.featurize_many([at_limit]).valid.all()


def test_3d_featurizer_refuses_large_molecules_quickly() -> None:
    started = time.perf_counter()
    result = FEATURIZER_3D.featurize_many(["C" * 300, "C" * (MAX_HEAVY_ATOMS_3D + 1), "CCO"])
    assert result.valid.tolist() == [False, False, True]
    assert f"3D featurizer's limit of {MAX_HEAVY_ATOMS_3D}" in result.errors[0]
    assert time.perf_counter() - started < 2.0  # a 300-carbon chain took 92 s before failing


@pytest.mark.parametrize("n_jobs", [0, -2, MAX_N_JOBS + 1, 99_999, 2.0, True, "2"])
def test_absurd_worker_counts_are_refused(n_jobs: object) -> None:
    with pytest.raises(ValueError, match=f"n_jobs must be an integer from 1 to {MAX_N_JOBS}"):
        FEATURIZER_2D.featurize_many(["CCO"], n_jobs=n_jobs)


@pytest.mark.parametrize("n_jobs", [1, 2, 64, MAX_N_JOBS, -1, np.int64(3)])
def test_worker_counts_are_capped_at_the_cores_and_the_molecules(n_jobs: int) -> None:
    workers = Featurizer._workers(1_000, n_jobs)
    assert 1 <= workers <= min(Featurizer._workers(1_000, -1), 1_000)
    assert Featurizer._workers(1, n_jobs) == 1


@PROPERTY
@given(st.lists(st.one_of(ANY_TEXT, st.text(SMILES_ALPHABET, max_size=30)), max_size=8))
def test_any_text_is_a_valid_or_an_invalid_row_with_a_one_line_reason(texts: list[str]) -> None:
    result = FEATURIZER_2D.featurize_many(texts)
    assert len(result) == len(texts) == len(result.errors)
    assert len(result.graphs) == int(result.valid.sum())
    for valid, error in zip(result.valid, result.errors, strict=True):
        assert valid == (error == "")
        assert "\n" not in error and len(error) < 400


@PROPERTY
@given(ANY_TEXT)
def test_parse_smiles_raises_only_invalid_molecule_error(text: str) -> None:
    try:
        mol = parse_smiles(text)
    except InvalidMoleculeError as error:
        assert len(str(error)) < 400
    else:
        assert mol.GetNumAtoms() > 0 and text.strip().isascii()


@PROPERTY
@given(
    st.lists(st.one_of(st.none(), st.integers(), st.floats(), st.binary(max_size=8)), max_size=5)
)
def test_non_strings_are_invalid_rows(values: list[object]) -> None:
    result = FEATURIZER_2D.featurize_many(values)
    assert not result.valid.any() and len(result) == len(values)


def test_long_reprs_are_cut_in_messages() -> None:
    with pytest.raises(InvalidMoleculeError) as error:
        parse_smiles("C1" + "C" * 3_000)  # unclosed ring: RDKit's message quotes the SMILES
    assert len(str(error.value)) < SHOWN_SMILES_LENGTH + 100
