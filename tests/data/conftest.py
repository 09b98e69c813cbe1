"""Small QM9 fixtures cut at test time from the committed 1,200-molecule fixture (tests/fixtures/qm9)."""

import lzma
from pathlib import Path

import pandas as pd
import pytest

#: the committed fixture (tests/fixtures/qm9/README.md); the slow full-data tests use SHARED_QM9
FIXTURE_QM9 = Path(__file__).resolve().parents[1] / "fixtures" / "qm9"
SHARED_QM9 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "qm9"
N_SMALL = 200


def read_first_frames(n: int) -> list[str]:
    """The first ``n`` extended-XYZ frames of the fixture's geometry file, as text blocks."""
    frames = []
    with lzma.open(FIXTURE_QM9 / "qm9_geometries.extxyz.xz", "rt") as handle:
        while len(frames) < n:
            count = handle.readline()
            frames.append(count + "".join(handle.readline() for _ in range(int(count) + 1)))
    return frames


@pytest.fixture(scope="session")
def qm9_frame() -> pd.DataFrame:
    """First ``N_SMALL`` rows of the fixture's qm9.csv.xz."""
    return pd.read_csv(FIXTURE_QM9 / "qm9.csv.xz", nrows=N_SMALL)


@pytest.fixture(scope="session")
def qm9_small_dir(tmp_path_factory, qm9_frame) -> Path:
    """A folder in the MoleculeNet layout: qm9.csv.xz + qm9_geometries.extxyz.xz, ``N_SMALL`` molecules."""
    directory = tmp_path_factory.mktemp("qm9_small")
    qm9_frame.to_csv(directory / "qm9.csv.xz", index=False)
    with lzma.open(directory / "qm9_geometries.extxyz.xz", "wt") as handle:
        handle.write("".join(read_first_frames(N_SMALL)))
    return directory


def write_pyg_raw(
    directory: Path, frame: pd.DataFrame, frames: list[str], excluded: list[int]
) -> None:
    """PyG's raw layout for the molecules of ``frame``: gdb9.sdf (coordinates from the extended
    XYZ frames, bonds from the SMILES matched onto them), gdb9.sdf.csv, uncharacterized.txt
    listing the 1-based positions ``excluded``."""
    import numpy as np
    from rdkit import Chem

    from molmtl.featurizers.graph3d import match_to_geometry

    writer = Chem.SDWriter(str(directory / "gdb9.sdf"))
    for smiles, block in zip(frame["smiles"], frames, strict=True):
        rows = [line.split() for line in block.splitlines()[2:]]
        elements = [r[0] for r in rows]
        coords = np.array([[float(v) for v in r[1:4]] for r in rows])
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        order = match_to_geometry(mol, elements, coords)
        mol = Chem.RenumberAtoms(mol, np.argsort(order).tolist())  # atom k = coordinate row k
        Chem.Kekulize(mol, clearAromaticFlags=True)
        conformer = Chem.Conformer(mol.GetNumAtoms())
        for k, xyz in enumerate(coords):
            conformer.SetAtomPosition(k, xyz.tolist())
        mol.AddConformer(conformer, assignId=True)
        writer.write(mol)
    writer.close()
    frame.drop(columns=["smiles"]).to_csv(directory / "gdb9.sdf.csv", index=False)
    header = "header line\n" * 9
    rows = "".join(f"  {i}   CC   CC   CC   0.0\n" for i in excluded)
    (directory / "uncharacterized.txt").write_text(header + rows + "=" * 20 + "\n")
