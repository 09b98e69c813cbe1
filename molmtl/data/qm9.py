"""QM9: finding the data, reading its three layouts, converting units, loading a dataset.

Layouts read (all give the same table: ``mol_id``, ``smiles``, 19 targets in the source units
of ``gdb9.sdf.csv``, and optionally per-molecule geometries):

- ``moleculenet``: ``qm9.csv`` (plain or ``.xz``) + ``qm9_geometries.extxyz(.xz)`` for 3D;
- ``pyg_raw``: PyTorch Geometric's raw folder ``gdb9.sdf``, ``gdb9.sdf.csv``, ``uncharacterized.txt``;
- ``qm9pack``: the CSV files bundled by the ``qm9pack`` package (found without importing it).

Where the data is looked for, in order: an explicit path, ``$MOLMTL_DATA``, the installed
``qm9pack`` package, then a download of the canonical archive (PyG's raw files).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import lzma
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from molmtl.data.cache import file_checksum, source_checkout_data_dir
from molmtl.data.dataset import (
    MoleculeDataset,
    assemble,
    featurize_with_cache,
    read_table,
    resolve_featurizer,
)
from molmtl.data.download import DownloadError, RemoteFile, download_all
from molmtl.data.targets import qm9_targets
from molmtl.featurizers import Featurizer
from molmtl.registry import Registry

#: source columns of every QM9 target, in ``gdb9.sdf.csv`` order
QM9_COLUMNS: tuple[str, ...] = (
    "A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve",
    "u0", "u298", "h298", "g298", "cv", "u0_atom", "u298_atom", "h298_atom", "g298_atom",
)  # fmt: skip

#: PyG's canonical raw files. The archive's checksum is not pinned: no machine that wrote this
#: code reached the internet. The exclusion list's checksum is that of the authors' file.
QM9_DOWNLOADS: tuple[RemoteFile, ...] = (
    RemoteFile(
        "https://deepchemdata.s3-us-west-1.amazonaws.com/datasets/molnet_publish/qm9.zip",
        "qm9.zip",
        None,
        True,
    ),
    RemoteFile(
        "https://ndownloader.figshare.com/files/3195404",
        "uncharacterized.txt",
        "3aa5115d540b356de94791d4a74c3bf1ed91c469ecf52a4f5d7cc0506fe02e24",
    ),
)

#: QM9 single-atom reference energies (Hartree) for u0, u298, h298, g298 (the authors' atomref)
QM9_ATOM_REFERENCES: dict[str, tuple[float, float, float, float]] = {
    "H": (-0.500273, -0.498857, -0.497912, -0.510927),
    "C": (-37.846772, -37.845355, -37.844411, -37.861317),
    "N": (-54.583861, -54.582445, -54.581501, -54.598897),
    "O": (-75.064579, -75.063163, -75.062219, -75.079532),
    "F": (-99.718730, -99.717314, -99.716370, -99.733544),
}
HARTREE_TO_KCAL_PER_MOL = 627.509

HOW_TO_GET_QM9 = (
    "QM9 not found. Give its folder (path=... or --data), set MOLMTL_DATA to a folder holding "
    "qm9.csv.xz (+ qm9_geometries.extxyz.xz for 3D) or PyG's raw gdb9.sdf, gdb9.sdf.csv and "
    "uncharacterized.txt, or `pip install qm9pack`, or allow the download (download=True, needs internet)."
)

#: per molecule: coordinates in Å ``[n_atoms, 3]``, and the element symbol of each atom
Geometries = tuple[list[np.ndarray], list[list[str]]]


class Qm9NotFoundError(FileNotFoundError):
    """No QM9 data where molmtl looked; the message says how to get it."""


@dataclass
class Qm9Source:
    """Where QM9 was found: its layout and files."""

    layout: str
    files: dict[str, Path]
    description: str = ""

    def checksum(self, *names: str) -> list[str]:
        """SHA-256 of each of the files ``names`` that this source has, in that order."""
        return [file_checksum(self.files[name]) for name in names if name in self.files]


#: a layout's reader: the source's table and a loader of its geometries
Reader = Callable[[Qm9Source], tuple[pd.DataFrame, Callable[[], Geometries]]]

#: one reader per layout, named like ``Qm9Source.layout``
_READERS: Registry[Reader] = Registry("QM9 layout")


def _open_text(path: Path) -> TextIO:
    return lzma.open(path, "rt") if path.suffix == ".xz" else open(path)


def _first_existing(directory: Path, names: Sequence[str]) -> Path | None:
    return next((directory / n for n in names if (directory / n).is_file()), None)


_GEOMETRY_NAMES = ("qm9_geometries.extxyz.xz", "qm9_geometries.extxyz")


def _source_in(path: Path) -> Qm9Source | None:
    """The QM9 layout at ``path`` (a file, a folder, or a folder with ``qm9/`` or ``raw/``)."""
    if path.is_file() and path.name.endswith((".csv", ".csv.xz")) and path.name != "gdb9.sdf.csv":
        files = {"table": path}
        geometry = _first_existing(path.parent, _GEOMETRY_NAMES)
        if geometry is not None:
            files["geometry"] = geometry
        return Qm9Source("moleculenet", files, str(path))
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        return None
    for directory in (path, path / "qm9", path / "raw", path / "qm9" / "raw"):
        table = _first_existing(directory, ["qm9.csv.xz", "qm9.csv"])
        if table is not None:
            files = {"table": table}
            geometry = _first_existing(directory, _GEOMETRY_NAMES)
            if geometry is not None:
                files["geometry"] = geometry
            return Qm9Source("moleculenet", files, str(directory))
        if all(
            (directory / n).is_file() for n in ("gdb9.sdf", "gdb9.sdf.csv", "uncharacterized.txt")
        ):
            files = {
                k: directory / n
                for k, n in (
                    ("sdf", "gdb9.sdf"),
                    ("table", "gdb9.sdf.csv"),
                    ("excluded", "uncharacterized.txt"),
                )
            }
            return Qm9Source("pyg_raw", files, str(directory))
    return None


def _qm9pack_source() -> Qm9Source | None:
    # find_spec locates a top-level package without running its __init__ (which is slow)
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    parts = sorted(data.glob("qm9_part*.csv"))
    if not parts:
        return None
    return Qm9Source(
        "qm9pack", {f"part{i}": p for i, p in enumerate(parts, 1)}, f"qm9pack package ({data})"
    )


def default_data_dir() -> Path:
    """``$MOLMTL_DATA``, else ``data/`` of a source checkout, else ``~/.cache/molmtl/data``."""
    if os.environ.get("MOLMTL_DATA"):
        return Path(os.environ["MOLMTL_DATA"])
    return source_checkout_data_dir() or Path.home() / ".cache" / "molmtl" / "data"


def locate_qm9(
    path: str | Path | None = None,
    *,
    download: bool = True,
    downloads: tuple[RemoteFile, ...] = QM9_DOWNLOADS,
) -> Qm9Source:
    """Find QM9: ``path`` → ``$MOLMTL_DATA`` → ``qm9pack`` → download into the data folder.

    Raises:
        Qm9NotFoundError: nothing found (or an explicit path without QM9); says how to get it.
    """
    if path is not None:
        found = _source_in(Path(path))
        if found is None:
            raise Qm9NotFoundError(f"no QM9 files at {str(path)!r}. {HOW_TO_GET_QM9}")
        return found
    if os.environ.get("MOLMTL_DATA"):
        found = _source_in(Path(os.environ["MOLMTL_DATA"]))
        if found is not None:
            return found
    found = _qm9pack_source()
    if found is not None:
        return found
    if not download:
        raise Qm9NotFoundError(HOW_TO_GET_QM9)
    target = default_data_dir() / "qm9" / "raw"
    try:
        download_all(downloads, target)
    except DownloadError as error:
        raise Qm9NotFoundError(f"{error}. {HOW_TO_GET_QM9}") from None
    found = _source_in(target)
    if found is None:
        raise Qm9NotFoundError(
            f"the download into {target} did not give gdb9.sdf and gdb9.sdf.csv. {HOW_TO_GET_QM9}"
        )
    return found


# ---- readers: each returns the table and a loader of geometries (coords, elements) -------------


def read_extxyz(path: Path) -> tuple[list[str], Geometries]:
    """``mol_id`` of each frame and its geometry (coordinates in Å ``[n_i, 3]``, element symbols)."""
    with _open_text(path) as handle:
        lines = handle.read().split("\n")
    mol_ids, counts, atom_lines = [], [], []
    i = 0
    while i < len(lines) and lines[i].strip():
        n = int(lines[i])
        comment = lines[i + 1]
        mol_id = next(
            (t.split("=", 1)[1] for t in comment.split() if t.startswith("mol_id=")),
            str(len(mol_ids)),
        )
        mol_ids.append(mol_id)
        counts.append(n)
        atom_lines.extend(lines[i + 2 : i + 2 + n])
        i += n + 2
    tokens = np.array(" ".join(atom_lines).split(), dtype=object).reshape(-1, 4)
    coords = tokens[:, 1:].astype(np.float64)
    bounds = np.cumsum([0, *counts])
    elements = tokens[:, 0].tolist()
    return mol_ids, (
        [coords[a:b] for a, b in itertools.pairwise(bounds)],
        [elements[a:b] for a, b in itertools.pairwise(bounds)],
    )


@_READERS.register("moleculenet")
def _read_moleculenet(source: Qm9Source) -> tuple[pd.DataFrame, Callable[[], Geometries]]:
    frame = read_table(source.files["table"])

    def geometries() -> Geometries:
        if "geometry" not in source.files:
            raise Qm9NotFoundError(
                f"3D featurization needs qm9_geometries.extxyz(.xz) next to {source.files['table']}"
            )
        mol_ids, geometry = read_extxyz(source.files["geometry"])
        if mol_ids != frame["mol_id"].tolist():
            raise ValueError(
                f"{source.files['geometry']} does not list the molecules of {source.files['table']} in order"
            )
        return geometry

    return frame, geometries


def read_excluded(path: Path) -> set[int]:
    """1-based GDB indices listed in the authors' ``uncharacterized.txt``."""
    excluded = set()
    with open(path) as handle:
        for line in handle:
            first = line.split(maxsplit=1)[0] if line.strip() else ""
            if first.isdigit():
                excluded.add(int(first))
    return excluded


@_READERS.register("pyg_raw")
def _read_pyg_raw(source: Qm9Source) -> tuple[pd.DataFrame, Callable[[], Geometries]]:
    from rdkit import Chem, rdBase

    frame = read_table(source.files["table"])
    excluded = read_excluded(source.files["excluded"])
    # same reading as PyG: hydrogens kept, no sanitization; molecule i is row i of the csv
    supplier = Chem.SDMolSupplier(str(source.files["sdf"]), removeHs=False, sanitize=False)
    keep, smiles, coords, elements = [], [], [], []
    with rdBase.BlockLogs():
        for i, mol in enumerate(supplier):
            if i + 1 in excluded or mol is None:
                continue
            keep.append(i)
            smiles.append(_smiles_of_sdf_mol(mol))
            coords.append(mol.GetConformer().GetPositions())
            elements.append([a.GetSymbol() for a in mol.GetAtoms()])
    if len(frame) < (keep[-1] + 1 if keep else 0):
        raise ValueError(
            f"{source.files['table']} has {len(frame)} rows, fewer than the molecules of {source.files['sdf']}"
        )
    frame = frame.iloc[keep].reset_index(drop=True)
    frame.insert(1, "smiles", smiles)
    return frame, lambda: (coords, elements)


def _smiles_of_sdf_mol(mol) -> str:
    """Heavy-atom SMILES of an unsanitized SDF molecule. When RDKit cannot sanitize it, the
    unsanitized SMILES, so that featurization reports the chemistry error for that molecule."""
    from rdkit import Chem

    copy = Chem.Mol(mol)
    try:
        Chem.SanitizeMol(copy)
        return Chem.MolToSmiles(Chem.RemoveHs(copy))
    except (Chem.rdchem.MolSanitizeException, RuntimeError, ValueError):
        return Chem.MolToSmiles(mol)


_QM9PACK_COLUMNS = {
    "RotA_GHz": "A", "RotB_GHz": "B", "RotC_GHz": "C", "Dipole_debye": "mu", "Polarizability_bohr3": "alpha",
    "HOMO_au": "homo", "LUMO_au": "lumo", "HOMO_LUMO_gap_au": "gap", "R2_bohr2": "r2", "ZPVE_au": "zpve",
    "InternalEnergy_0K_au": "u0", "InternalEnergy_298K_au": "u298", "Enthalphy_298K_au": "h298",
    "GibbsFreeEnergy_298K_au": "g298", "Heatcapacity_Cv_cal_mol_K": "cv",
}  # fmt: skip


def atomization_energies(frame: pd.DataFrame, element_counts: np.ndarray) -> pd.DataFrame:
    """``u0_atom``, ``u298_atom``, ``h298_atom``, ``g298_atom`` in kcal/mol, as in ``gdb9.sdf.csv``.

    Args:
        frame: with columns u0, u298, h298, g298 (Hartree).
        element_counts: ``[n, 5]`` atoms of H, C, N, O, F per molecule.
    """
    references = np.array([QM9_ATOM_REFERENCES[e] for e in ("H", "C", "N", "O", "F")])  # [5, 4]
    atoms = element_counts @ references  # [n, 4]
    energies = frame[["u0", "u298", "h298", "g298"]].to_numpy()
    return pd.DataFrame(
        (energies - atoms) * HARTREE_TO_KCAL_PER_MOL,
        columns=["u0_atom", "u298_atom", "h298_atom", "g298_atom"],
    )


@_READERS.register("qm9pack")
def _read_qm9pack(source: Qm9Source) -> tuple[pd.DataFrame, Callable[[], Geometries]]:
    raw = pd.concat([read_table(source.files[k]) for k in sorted(source.files)], ignore_index=True)
    raw = raw.sort_values("Index", kind="stable").reset_index(drop=True)
    frame = raw.rename(columns=_QM9PACK_COLUMNS)
    frame.insert(0, "mol_id", "gdb_" + raw["Index"].astype(str))
    frame.insert(1, "smiles", raw["SMILES"])
    counts = np.array(
        [json.loads(s) for s in raw["Stoichiometry"].str.replace("'", '"')], dtype=np.float64
    )
    frame = pd.concat([frame, atomization_energies(frame, counts)], axis=1)

    def geometries() -> Geometries:
        coords = [np.array(json.loads(s)) for s in raw["XYZ_Ang"]]
        elements = [json.loads(s.replace("'", '"')) for s in raw["Elements"]]
        return coords, elements

    return frame, geometries


def read_qm9(source: Qm9Source) -> tuple[pd.DataFrame, Callable[[], Geometries]]:
    """The QM9 table (``mol_id``, ``smiles``, the 19 source columns) and a geometry loader."""
    frame, geometries = _READERS.get(source.layout)(source)
    missing = [c for c in ("mol_id", "smiles", *QM9_COLUMNS) if c not in frame.columns]
    if missing:
        raise ValueError(f"QM9 table from {source.description} lacks columns {missing}")
    return frame, geometries


def load_qm9(
    path: str | Path | None = None,
    *,
    targets: Sequence[str] | None = None,
    featurizer: str | dict | Featurizer = "2d",
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    download: bool = True,
    n_jobs: int | None = None,
) -> MoleculeDataset:
    """QM9 as a :class:`MoleculeDataset` with targets in PyG's units.

    Args:
        path: a QM9 folder or file; None searches ``$MOLMTL_DATA``, ``qm9pack``, then downloads.
        targets: any of the 19 QM9 target names (``QM9_TARGETS``); None gives the 11
            benchmark tasks (``QM9_DEFAULT_TASKS``) in their standard order.
        featurizer: ``"2d"`` (from SMILES) or ``"3d"`` (from the geometries), a spec, or a
            featurizer.
        cache_dir: where featurized graphs are cached (None: ``default_cache_dir()``).
        use_cache: read and write that cache.
    """
    chosen_targets = qm9_targets(targets)
    chosen = resolve_featurizer(featurizer)
    source = locate_qm9(path, download=download)
    frame, geometries = read_qm9(source)
    smiles = frame["smiles"].tolist()
    needs_geometry = chosen.uses_coordinates

    def featurize():
        if not needs_geometry:
            return chosen.featurize_many(smiles, n_jobs=n_jobs)
        coords, elements = geometries()
        return chosen.featurize_many(smiles, coords=coords, elements=elements, n_jobs=n_jobs)

    checksums = [source.layout, *source.checksum(*sorted(source.files))] if use_cache else []
    batch = featurize_with_cache(
        chosen,
        featurize,
        source_checksums=checksums,
        cache_dir=cache_dir,
        use_cache=use_cache,
        n_molecules=len(smiles),
    )
    raw = frame[[t.column for t in chosen_targets]].to_numpy(dtype=np.float64)
    return assemble(batch, smiles, raw, chosen_targets, chosen.spec, ids=frame["mol_id"].to_numpy())
