"""The models shipped inside the package: integrity, loading, predictions, tamper refusal."""

from __future__ import annotations

import json
import shutil
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
import torch

from molmtl.models import load_model
from molmtl.predict import Predictor
from molmtl.pretrained import (
    CARD_FILE,
    DEFAULT_MODEL,
    ShippedModel,
    ShippedModelError,
    available_models,
    get_model,
)
from molmtl.pretrained._checksums import SHA256
from molmtl.rundir import sha256_of

QM9_TARGETS = [
    "mu", "alpha", "homo", "lumo", "r2", "zpve",
    "u0_atom", "u298_atom", "h298_atom", "g298_atom", "cv",
]  # fmt: skip
REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "pretrained.md"


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.pretrained(device="cpu")


def shipped_copy(tmp_path: Path, name: str = DEFAULT_MODEL) -> Path:
    with get_model(name).folder() as folder:
        return Path(shutil.copytree(folder, tmp_path / name))


@pytest.mark.parametrize("name", available_models())
def test_every_file_matches_the_recorded_checksum(name):
    model = get_model(name)
    assert set(model.sha256) == {"config.json", "model.pt", CARD_FILE}
    with model.folder() as folder:
        assert sorted(p.name for p in folder.iterdir()) == sorted(model.sha256)
        for file_name, digest in SHA256[name].items():
            assert sha256_of(folder / file_name) == digest
        config = json.loads((folder / "config.json").read_text())
        assert config["weights"]["sha256"] == SHA256[name]["model.pt"]


@pytest.mark.parametrize("name", available_models())
def test_weights_are_tensors_only_and_small(name):
    with get_model(name).folder() as folder:
        state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
        assert state and all(isinstance(v, torch.Tensor) for v in state.values())
        assert (folder / "model.pt").stat().st_size < 5_000_000
        model, config = load_model(folder)
        assert sum(p.numel() for p in model.parameters()) > 10_000
        # no path of the training machine is shipped
        assert config["train"]["data"] is None and config["train"]["out"] is None


def test_default_predicts_the_eleven_qm9_properties_row_aligned(predictor):
    smiles = ["CCO", "not-a-smiles", "c1ccccc1", "OC1COC1", "", "CC(=O)O"]
    frame = predictor.predict(smiles)
    assert frame["smiles"].tolist() == smiles
    assert predictor.targets == QM9_TARGETS
    assert frame["valid"].tolist() == [True, False, True, True, False, True]
    values = frame[QM9_TARGETS].to_numpy()
    assert np.isfinite(values[frame["valid"]]).all()
    assert np.isnan(values[~frame["valid"]]).all()
    assert frame.loc[1, "error"] and frame.loc[0, "error"] == ""
    # the same molecules written another way, in a batch of the same make-up: the same answer
    written = predictor.predict(["CCO", "c1ccccc1"])[QM9_TARGETS].to_numpy()
    rewritten = predictor.predict(["OCC", "C1=CC=CC=C1"])[QM9_TARGETS].to_numpy()
    np.testing.assert_array_equal(written, rewritten)
    # another batch make-up changes float sums: ~1e-7 relative, so also an absolute floor
    np.testing.assert_allclose(written, values[[0, 2]], rtol=1e-5, atol=1e-5)


def test_predictions_are_physically_plausible(predictor):
    # ethanol: HOMO about -7 eV, polarizability about 30-40 a0^3, dipole 1-2 D (QM9 values)
    row = predictor.predict(["CCO"]).iloc[0]
    assert -9.0 < row["homo"] < -5.0
    assert 20.0 < row["alpha"] < 50.0
    assert 0.5 < row["mu"] < 3.0


def test_outside_qm9_chemistry_is_flagged(predictor):
    frame = predictor.predict(["CCO", "[Na+].[Cl-]", "CCCCCCCCCCCCCCCC", "C[Si](C)(C)C"])
    assert frame["in_domain"].tolist() == [True, False, False, False]
    assert all(frame["domain_note"][1:])


def test_a_tampered_weights_file_is_refused(tmp_path):
    folder = shipped_copy(tmp_path)
    data = bytearray((folder / "model.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.pt").write_bytes(bytes(data))
    with pytest.raises(ShippedModelError, match=r"model\.pt does not match"):
        get_model().verify(folder)


def test_consistent_edits_of_weights_and_config_are_still_refused(tmp_path):
    # whoever edits model.pt and its checksum in config.json does not edit the code's record
    folder = shipped_copy(tmp_path)
    state = torch.load(folder / "model.pt", weights_only=True)
    torch.save({k: v + 1 for k, v in state.items()}, folder / "model.pt")
    config = json.loads((folder / "config.json").read_text())
    config["weights"]["sha256"] = sha256_of(folder / "model.pt")
    (folder / "config.json").write_text(json.dumps(config))
    load_model(folder)  # a valid run directory now ...
    with pytest.raises(ShippedModelError, match=r"config\.json does not match"):
        get_model().verify(folder)  # ... but not the shipped model


def test_a_missing_file_is_refused(tmp_path):
    folder = shipped_copy(tmp_path)
    (folder / CARD_FILE).unlink()
    with pytest.raises(ShippedModelError, match=r"card\.json is missing"):
        get_model().verify(folder)


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(ShippedModelError, match=r"no shipped model named 'nope'.*qm9-2d-dbmtl"):
        Predictor.pretrained("nope")


def test_a_model_without_recorded_files_verifies_nothing_and_is_refused(tmp_path):
    with pytest.raises(ShippedModelError, match="no recorded files"):
        ShippedModel("empty", "nothing", {}).verify(tmp_path)


def test_card_states_what_the_model_card_needs():
    card = get_model().card()
    for key in ("data", "split", "balancer", "epochs", "test", "training_seconds", "hardware"):
        assert card[key] not in (None, "", {}), key
    assert set(card["test"]["mae"]) == set(QM9_TARGETS)
    assert set(card["test"]["single_task_reference_mae"]) == set(QM9_TARGETS)


def test_docs_show_the_shipped_card():
    text = DOC.read_text()
    card = get_model().card()
    assert f"{card['test']['delta_m_percent']:+.1f}" in text
    for target, mae in card["test"]["mae"].items():
        assert f"{mae:.4g}" in text, target


def test_the_package_data_globs_ship_every_file():
    settings = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = settings["package-data"]["molmtl"]
    for name in available_models():
        for file_name in get_model(name).sha256:
            path = f"pretrained/{name}/{file_name}"
            assert any(fnmatch(path, pattern) for pattern in globs), path
