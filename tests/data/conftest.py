"""Small QM9 fixtures cut at test time from the shared data (never stored in the repo)."""

import lzma
from pathlib import Path

import pandas as pd
import pytest

SHARED_QM9 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "qm9"
N_SMALL = 200


def _require_shared() -> None:
    if not (SHARED_QM9 / "qm9.csv.xz").is_file():
        pytest.skip(f"shared QM9 data not found at {SHARED_QM9}")


def read_first_frames(n: int) -> list[str]:
    """The first ``n`` extended-XYZ frames of the shared geometry file, as text blocks."""
    frames = []
    with lzma.open(SHARED_QM9 / "qm9_geometries.extxyz.xz", "rt") as handle:
        while len(frames) < n:
            count = handle.readline()
            frames.append(count + "".join(handle.readline() for _ in range(int(count) + 1)))
    return frames


@pytest.fixture(scope="session")
def qm9_frame() -> pd.DataFrame:
    """First ``N_SMALL`` rows of the shared qm9.csv.xz."""
    _require_shared()
    return pd.read_csv(SHARED_QM9 / "qm9.csv.xz", nrows=N_SMALL)


@pytest.fixture(scope="session")
def qm9_small_dir(tmp_path_factory, qm9_frame) -> Path:
    """A folder in the MoleculeNet layout: qm9.csv.xz + qm9_geometries.extxyz.xz, ``N_SMALL`` molecules."""
    directory = tmp_path_factory.mktemp("qm9_small")
    qm9_frame.to_csv(directory / "qm9.csv.xz", index=False)
    with lzma.open(directory / "qm9_geometries.extxyz.xz", "wt") as handle:
        handle.write("".join(read_first_frames(N_SMALL)))
    return directory
