"""QM9 loading from each layout, and where the data is looked for."""

import sys

import numpy as np
import pandas as pd
import pytest
import torch

from molmtl.data import Qm9NotFoundError, load_qm9, locate_qm9
from molmtl.data.qm9 import QM9_COLUMNS, Qm9Source, atomization_energies, read_qm9
from tests.data.conftest import N_SMALL, read_first_frames, write_pyg_raw

N_RAW = 40
EXCLUDED = [3, 17]  # 1-based positions marked uncharacterized in the fake raw folder


@pytest.fixture(scope="module")
def pyg_raw_dir(tmp_path_factory, qm9_frame):
    directory = tmp_path_factory.mktemp("pyg_raw")
    write_pyg_raw(directory, qm9_frame.iloc[:N_RAW], read_first_frames(N_RAW), EXCLUDED)
    return directory


def test_moleculenet_layout_values(qm9_small_dir, qm9_frame, tmp_path):
    dataset = load_qm9(qm9_small_dir, targets=["homo", "cv", "u0_atom"], cache_dir=tmp_path)
    assert len(dataset) == N_SMALL and dataset.smiles == qm9_frame["smiles"].tolist()
    expected = qm9_frame[["homo", "cv", "u0_atom"]].to_numpy() * [27.211386246, 1.0, 0.04336414]
    np.testing.assert_allclose(dataset.y.numpy(), expected, rtol=1e-6)
    assert dataset.in_domain.all() and dataset.featurizer_spec["name"] == "2d"


def test_pyg_raw_layout_matches_moleculenet(pyg_raw_dir, qm9_small_dir, tmp_path):
    raw = load_qm9(pyg_raw_dir, cache_dir=tmp_path / "a")
    kept = [i for i in range(N_RAW) if i + 1 not in EXCLUDED]
    reference = load_qm9(qm9_small_dir, cache_dir=tmp_path / "b").subset(kept)
    assert raw.ids.tolist() == reference.ids.tolist()
    torch.testing.assert_close(raw.y, reference.y)
    # SMILES come from the SDF, so compare graphs up to atom order through canonical SMILES
    from rdkit import Chem

    canonical = [Chem.CanonSmiles(s) for s in reference.smiles]
    assert [Chem.CanonSmiles(s) for s in raw.smiles] == canonical


@pytest.mark.parametrize("layout", ["moleculenet", "pyg_raw"])
def test_3d_from_both_layouts_agree(layout, pyg_raw_dir, qm9_small_dir, tmp_path):
    directory = qm9_small_dir if layout == "moleculenet" else pyg_raw_dir
    dataset = load_qm9(directory, featurizer="3d", cache_dir=tmp_path)
    reference = load_qm9(qm9_small_dir, featurizer="3d", cache_dir=tmp_path)
    index = 3 if layout == "moleculenet" else 2  # gdb_4 (position 3 is excluded in the raw folder)
    assert dataset.ids[index] == "gdb_4"
    got, expected = dataset.graphs.get(index), reference.graphs.get(3)
    for name in ("x", "edge_index", "edge_attr", "pos"):
        # the SDF keeps 4 decimals of the coordinates
        torch.testing.assert_close(got[name], expected[name], atol=1e-3, rtol=0)


def test_atomization_energies_reproduce_the_table(qm9_frame):
    frames = read_first_frames(50)
    counts = np.array(
        [[block.count(f"\n{e} ") for e in ("H", "C", "N", "O", "F")] for block in frames],
        dtype=float,
    )
    computed = atomization_energies(qm9_frame.iloc[:50], counts)
    np.testing.assert_allclose(
        computed.to_numpy(), qm9_frame.iloc[:50][computed.columns].to_numpy(), rtol=1e-9
    )


def write_fake_qm9pack(root, frame: pd.DataFrame, frames: list[str]) -> None:
    """A package folder shaped like qm9pack 1.0.3 (data/qm9_part*.csv) for ``frame``."""
    package = root / "qm9pack"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('molmtl must not import qm9pack')\n")
    rows = []
    for (_, row), block in zip(frame.iterrows(), frames, strict=True):
        atoms = [line.split() for line in block.splitlines()[2:]]
        symbols = [a[0] for a in atoms]
        record = {
            "XYZ_file": f"dsgdb9nsd_{int(row.mol_id[4:]):06d}.xyz",
            "Index": int(row.mol_id[4:]),
            "SMILES": row.smiles,
            "Stoichiometry": str([symbols.count(e) for e in ("H", "C", "N", "O", "F")]),
            "Elements": str(symbols),
            "XYZ_Ang": str([[float(v) for v in a[1:4]] for a in atoms]),
        }
        names = {"A": "RotA_GHz", "B": "RotB_GHz", "C": "RotC_GHz", "mu": "Dipole_debye"}
        names |= {
            "alpha": "Polarizability_bohr3",
            "homo": "HOMO_au",
            "lumo": "LUMO_au",
            "gap": "HOMO_LUMO_gap_au",
        }
        names |= {
            "r2": "R2_bohr2",
            "zpve": "ZPVE_au",
            "u0": "InternalEnergy_0K_au",
            "u298": "InternalEnergy_298K_au",
        }
        names |= {
            "h298": "Enthalphy_298K_au",
            "g298": "GibbsFreeEnergy_298K_au",
            "cv": "Heatcapacity_Cv_cal_mol_K",
        }
        record |= {source: row[ours] for ours, source in names.items()}
        rows.append(record)
    table = pd.DataFrame(rows)
    table.iloc[::-1].iloc[:10].to_csv(
        package / "data" / "qm9_part2.csv", index=False
    )  # order is restored
    table.iloc[: len(table) - 10].to_csv(package / "data" / "qm9_part1.csv", index=False)


@pytest.fixture
def fake_qm9pack(tmp_path, qm9_frame, monkeypatch):
    write_fake_qm9pack(tmp_path / "site", qm9_frame.iloc[:30], read_first_frames(30))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delenv("MOLMTL_DATA", raising=False)
    yield
    sys.modules.pop("qm9pack", None)


def test_qm9pack_layout(fake_qm9pack, qm9_frame):
    source = locate_qm9(download=False)
    assert source.layout == "qm9pack"
    frame, geometries = read_qm9(source)
    np.testing.assert_allclose(
        frame[list(QM9_COLUMNS)].to_numpy(),
        qm9_frame.iloc[:30][list(QM9_COLUMNS)].to_numpy(),
        rtol=1e-9,
    )
    coords, elements = geometries()
    assert elements[0] == ["C", "H", "H", "H", "H"] and coords[0].shape == (5, 3)


def test_resolution_order(fake_qm9pack, qm9_small_dir, tmp_path, monkeypatch):
    assert locate_qm9(qm9_small_dir).layout == "moleculenet"  # explicit path first
    monkeypatch.setenv("MOLMTL_DATA", str(qm9_small_dir))
    assert locate_qm9().description == str(qm9_small_dir)  # then $MOLMTL_DATA
    monkeypatch.setenv("MOLMTL_DATA", str(tmp_path))  # empty: falls through to qm9pack
    assert locate_qm9(download=False).layout == "qm9pack"


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLMTL_DATA", str(tmp_path))
    monkeypatch.setattr("molmtl.data.qm9._qm9pack_source", lambda: None)
    with pytest.raises(Qm9NotFoundError, match=r"MOLMTL_DATA.*pip install qm9pack"):
        locate_qm9(download=False)
    with pytest.raises(Qm9NotFoundError, match="no QM9 files at"):
        load_qm9(tmp_path / "nowhere")


def test_explicit_csv_file_with_any_name(qm9_small_dir, tmp_path):
    table = tmp_path / "my_qm9_copy.csv.xz"
    table.write_bytes((qm9_small_dir / "qm9.csv.xz").read_bytes())
    source = locate_qm9(table)
    assert source.layout == "moleculenet" and source.files == {"table": table}
    assert len(load_qm9(table, cache_dir=tmp_path / "cache")) == N_SMALL


def test_unknown_layout_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown QM9 layout 'sqlite'.*moleculenet.*qm9pack"):
        read_qm9(Qm9Source("sqlite", {}))
