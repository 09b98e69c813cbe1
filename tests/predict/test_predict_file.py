"""Predictor.predict_file: streaming a CSV, keeping every input column, never overwriting one."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from molmtl.predict import PredictionSummary, Predictor, PredictorError

#: ids with leading zeros, an empty cell, a quoted comma, "NA" text: all must come back verbatim
INPUT_CSV = """id,smiles,note
007,CCO,"ethanol, the one in wine"
008,not-a-smiles,NA
009,,
010,c1ccccc1,
011,   ,whitespace
012,[Na+].[Cl-],salt
013,CCCCCCCCCCCC,too big for QM9
014,OC1COC1,
015,C1CC,unclosed ring
"""


@pytest.fixture(scope="module")
def predictor(run_dir: Path) -> Predictor:
    return Predictor.load(run_dir, device="cpu")


@pytest.fixture
def input_csv(tmp_path: Path) -> Path:
    path = tmp_path / "molecules.csv"
    path.write_text(INPUT_CSV)
    return path


def read_text_csv(path: Path | io.StringIO) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_input_columns_kept_verbatim_and_predictions_appended(
    predictor: Predictor, input_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    predictor.predict_file(input_csv, out)
    original = read_text_csv(input_csv)
    written = read_text_csv(out)
    assert list(written.columns) == [
        *original.columns,
        *["pred_valid", "pred_error", "pred_in_domain", "pred_domain_note"],
        *["pred_mu", "pred_gap", "pred_cv"],
    ]
    pd.testing.assert_frame_equal(written[original.columns], original)


@pytest.mark.parametrize("chunk_size", [1, 4, 10_000])
def test_predictions_match_predict(
    predictor: Predictor, input_csv: Path, tmp_path: Path, chunk_size: int
) -> None:
    out = tmp_path / "out.csv"
    summary = predictor.predict_file(input_csv, out, chunk_size=chunk_size)
    written = pd.read_csv(out, keep_default_na=False, dtype={"id": str})
    expected = predictor.predict(read_text_csv(input_csv)["smiles"])
    assert written["pred_valid"].tolist() == expected["valid"].tolist()
    assert written["pred_in_domain"].tolist() == expected["in_domain"].tolist()
    assert written["pred_domain_note"].tolist() == expected["domain_note"].tolist()
    assert written["pred_error"].tolist() == expected["error"].tolist()
    for target in predictor.targets:
        predicted = pd.to_numeric(written["pred_" + target]).to_numpy()
        np.testing.assert_allclose(predicted, expected[target].to_numpy(), rtol=1e-5, atol=1e-5)
    assert summary == PredictionSummary(n_rows=9, n_invalid=4, n_out_of_domain=2)


def test_memory_holds_one_chunk(
    predictor: Predictor, input_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    predict_arrays = predictor.predict_arrays

    def recording(smiles):
        seen.append(len(smiles))
        return predict_arrays(smiles)

    monkeypatch.setattr(predictor, "predict_arrays", recording)
    predictor.predict_file(input_csv, io.StringIO(), chunk_size=4)
    assert seen == [4, 4, 1]


def test_streams_in_and_out(predictor: Predictor, input_csv: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    predictor.predict_file(io.StringIO(INPUT_CSV), out)
    predictor.predict_file(input_csv, tmp_path / "out.csv")
    assert out.getvalue() == (tmp_path / "out.csv").read_text()


def test_other_smiles_column(predictor: Predictor, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("name,SMILES\nethanol,CCO\n")
    out = io.StringIO()
    predictor.predict_file(source, out, smiles_column="SMILES")
    out.seek(0)
    assert read_text_csv(out)["pred_valid"].tolist() == ["True"]


def test_missing_smiles_column_names_the_columns(
    predictor: Predictor, input_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    with pytest.raises(PredictorError, match=r"no column 'SMILES'.*\['id', 'smiles', 'note'\]"):
        predictor.predict_file(input_csv, out, smiles_column="SMILES")
    assert list(tmp_path.iterdir()) == [input_csv]


def test_prediction_columns_never_overwrite_input_columns(
    predictor: Predictor, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("smiles,pred_mu\nCCO,1.0\n")
    with pytest.raises(PredictorError, match=r"\['pred_mu'\].*prefix"):
        predictor.predict_file(source, tmp_path / "out.csv")
    out = io.StringIO()
    predictor.predict_file(source, out, prefix="molmtl_")
    out.seek(0)
    written = read_text_csv(out)
    assert written["pred_mu"].tolist() == ["1.0"]
    assert "molmtl_mu" in written.columns


def test_header_only_file_gives_header_only_output(predictor: Predictor, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,smiles\n")
    out = tmp_path / "out.csv"
    summary = predictor.predict_file(source, out)
    assert out.read_text().splitlines() == [
        "id,smiles,pred_valid,pred_error,pred_in_domain,pred_domain_note,pred_mu,pred_gap,pred_cv"
    ]
    assert summary == PredictionSummary()


def test_empty_file_is_an_error(predictor: Predictor, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("")
    with pytest.raises(PredictorError, match="empty"):
        predictor.predict_file(source, tmp_path / "out.csv")


def test_failure_midway_leaves_no_partial_output(predictor: Predictor, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,smiles\n" + "".join(f"{i},CCO\n" for i in range(10)) + "10,CCO,extra\n")
    with pytest.raises(PredictorError, match=r"in\.csv: Error tokenizing data.*line 12"):
        predictor.predict_file(source, tmp_path / "out.csv", chunk_size=3)
    assert list(tmp_path.iterdir()) == [source]


def test_ensemble_appends_std_columns(ensemble_run_dirs: list[Path], input_csv: Path) -> None:
    out = io.StringIO()
    Predictor.load(ensemble_run_dirs, device="cpu").predict_file(input_csv, out)
    out.seek(0)
    assert [c for c in read_text_csv(out).columns if c.startswith("pred_")] == [
        *["pred_valid", "pred_error", "pred_in_domain", "pred_domain_note"],
        *["pred_mu", "pred_mu_std", "pred_gap", "pred_gap_std", "pred_cv", "pred_cv_std"],
    ]


def test_empty_prefix_appends_plain_names(predictor: Predictor, input_csv: Path) -> None:
    out = io.StringIO()
    predictor.predict_file(input_csv, out, prefix="")
    out.seek(0)
    assert list(read_text_csv(out).columns) == [
        "id",
        "smiles",
        "note",
        "valid",
        "error",
        "in_domain",
        "domain_note",
        "mu",
        "gap",
        "cv",
    ]


def test_bad_chunk_size_is_named(predictor: Predictor, input_csv: Path) -> None:
    with pytest.raises(PredictorError, match="chunk_size"):
        predictor.predict_file(input_csv, io.StringIO(), chunk_size=0)


@pytest.mark.parametrize("body", ["1,CCO,x\n2,CCC,y\n", "1,CCO,\n2,CCC,\n"])
def test_rows_longer_than_the_header_are_refused(
    predictor: Predictor, tmp_path: Path, body: str
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,smiles\n" + body)
    with pytest.raises(PredictorError, match="more fields than the header"):
        predictor.predict_file(source, tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == [source]


def _zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


GOOD = b"smiles\nCCO\nc1ccccc1\n"
#: file name → content: truncated, not that format, an archive of several files or none, a
#: format whose reader may be missing
DAMAGED_INPUTS = {
    "truncated.csv.gz": gzip.compress(GOOD)[:15],
    "truncated.csv.bz2": bz2.compress(GOOD)[:20],
    "truncated.csv.xz": lzma.compress(GOOD)[:30],
    "text.csv.gz": GOOD,
    "text.csv.bz2": GOOD,
    "text.csv.xz": GOOD,
    "text.csv.zip": GOOD,
    "text.csv.zst": GOOD,
    "truncated.csv.zip": _zip_of({"a.csv": GOOD})[:40],
    "two.csv.zip": _zip_of({"a.csv": GOOD, "b.csv": GOOD}),
    "none.csv.zip": _zip_of({}),
}


@pytest.mark.parametrize("name", DAMAGED_INPUTS)
def test_damaged_compressed_inputs_fail_in_one_line(
    predictor: Predictor, tmp_path: Path, name: str
) -> None:
    source = tmp_path / name
    source.write_bytes(DAMAGED_INPUTS[name])
    with pytest.raises(PredictorError, match=f"{name}") as error:
        predictor.predict_file(source, tmp_path / "out.csv")
    assert "\n" not in str(error.value).strip()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zip"])
def test_sound_compressed_inputs_are_read(
    predictor: Predictor, tmp_path: Path, suffix: str
) -> None:
    compress = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}.get(
        suffix, lambda data: _zip_of({"in.csv": data})
    )
    source = tmp_path / f"in.csv{suffix}"
    source.write_bytes(compress(GOOD))
    out = io.StringIO()
    assert predictor.predict_file(source, out).n_valid == 2


@pytest.mark.parametrize("content", [b"", b"\n", b"\n\n\n", b"   \n", b"\xef\xbb\xbf"])
def test_empty_files_are_an_error(predictor: Predictor, tmp_path: Path, content: bytes) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(content)
    with pytest.raises(PredictorError, match=r"empty|no column 'smiles'"):
        predictor.predict_file(source, tmp_path / "out.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_undecodable_bytes_are_invalid_rows_and_come_back_unchanged(
    predictor: Predictor, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"id,smiles\n\xfe01,C\xffC\n02,CCO\n03,\xc3(\n")
    out = tmp_path / "out.csv"
    summary = predictor.predict_file(source, out)
    assert (summary.n_rows, summary.n_invalid) == (3, 2)
    lines = out.read_bytes().splitlines()
    assert lines[1].startswith(b"\xfe01,C\xffC,False,")
    assert lines[3].startswith(b"03,\xc3(,False,")
    assert b",True," in lines[2]


def test_a_bom_does_not_hide_the_smiles_column(predictor: Predictor, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"\xef\xbb\xbfsmiles,id\nCCO,1\n")
    assert predictor.predict_file(source, io.StringIO()).n_valid == 1


def test_the_output_is_checked_before_the_input_is_read(
    predictor: Predictor, tmp_path: Path
) -> None:
    with pytest.raises(PredictorError, match="does not exist"):
        predictor.predict_file(tmp_path / "absent.csv", tmp_path / "no-dir" / "out.csv")


def test_a_missing_input_names_it(predictor: Predictor, tmp_path: Path) -> None:
    with pytest.raises(PredictorError, match=r"cannot read .*absent\.csv: No such file"):
        predictor.predict_file(tmp_path / "absent.csv", tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == []


def test_a_huge_header_is_shown_shortened(predictor: Predictor, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(",".join(f"column_{i}_" + "x" * 100 for i in range(500)) + "\n")
    with pytest.raises(PredictorError, match="and 480 more") as error:
        predictor.predict_file(source, io.StringIO())
    assert len(str(error.value)) < 1_500


CELL = st.one_of(
    st.sampled_from(["CCO", "c1ccccc1", "C1CC", "", " ", "NA", "007", "[Na+].[Cl-]"]),
    st.text(st.characters(codec=None, exclude_categories=["Cs"]), max_size=10),
    st.binary(max_size=6).map(lambda raw: raw.decode("utf-8", errors="surrogateescape")),
)


@settings(max_examples=15, deadline=None, derandomize=True, database=None)
@given(
    rows=st.lists(st.tuples(CELL, CELL), max_size=8),
    chunk_size=st.integers(1, 3),
)
def test_any_table_comes_back_cell_for_cell_with_one_prediction_per_row(
    predictor: Predictor, tmp_path_factory: pytest.TempPathFactory, rows: list, chunk_size: int
) -> None:
    folder = tmp_path_factory.mktemp("table")
    source, out = folder / "in.csv", folder / "out.csv"
    with open(source, "w", newline="", encoding="utf-8", errors="surrogateescape") as file:
        writer = csv.writer(file, quoting=csv.QUOTE_ALL)  # quoted: any text is one cell
        writer.writerow(["note", "smiles"])
        writer.writerows(rows)
    summary = predictor.predict_file(source, out, chunk_size=chunk_size)
    assert summary.n_rows == len(rows)
    written = pd.read_csv(out, dtype=str, keep_default_na=False, encoding_errors="surrogateescape")
    assert [tuple(row) for row in written[["note", "smiles"]].to_numpy()] == [
        tuple(row) for row in rows
    ]
    expected = predictor.predict([smiles for _, smiles in rows])
    assert written["pred_valid"].tolist() == [str(valid) for valid in expected["valid"]]
    assert sorted(path.name for path in folder.iterdir()) == ["in.csv", "out.csv"]
