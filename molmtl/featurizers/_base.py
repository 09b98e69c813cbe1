"""Featurizer base class: per-molecule error reporting, chemistry facts, batching and packing.

A concrete featurizer declares its :class:`~molmtl.featurizers.features.Feature` lists and
turns one parsed molecule into raw integer/float rows (:meth:`Featurizer._raw_graph`); this
class does everything else: parsing with a reason for each failure, the per-molecule
:class:`~molmtl.featurizers.facts.MoleculeFacts` (judging a domain is not its job: see
:mod:`molmtl.featurizers.domain`), chunked (optionally parallel) featurization, and one
vectorized encoding of all rows.
"""

from __future__ import annotations

import itertools
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_all_start_methods, get_context
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from rdkit import Chem, rdBase
from torch_geometric.data import Data

from molmtl.featurizers.facts import FactRow, MoleculeFacts, molecule_facts
from molmtl.featurizers.features import Feature, encode, total_dim
from molmtl.graphs import PackedGraphs

#: below this many molecules a process pool's start-up and transfers outweigh its gain (on a
#: busy 2-core machine: 20,000 QM9 SMILES no gain, 40,000 1.16x with 2 workers)
PARALLEL_MIN_MOLECULES = 20_000
#: more worker processes than this is a mistake (``--n-jobs 99999`` forked thousands), refused;
#: up to it, the count is capped at the usable cores
MAX_N_JOBS = 1_024


class InvalidMoleculeError(ValueError):
    """A molecule that cannot be featurized; the message says why."""


class FeaturizerSpecError(ValueError):
    """A stored featurizer spec that this code does not reproduce."""


class RawGraph(NamedTuple):
    """One molecule before encoding.

    Attributes:
        node_raw: ``[n, len(node_features)]`` one raw value per node feature block.
        edge_index: ``[2, m]`` local node indices.
        edge_raw: ``[m, len(edge_features)]`` one raw value per edge feature block.
        pos: ``[n, 3]`` coordinates or None.
        note: '' or a remark kept with the molecule (e.g. "conformer generated").
    """

    node_raw: np.ndarray
    edge_index: np.ndarray
    edge_raw: np.ndarray
    pos: np.ndarray | None = None
    note: str = ""


@dataclass
class FeaturizedBatch:
    """Result of :meth:`Featurizer.featurize_many`, aligned with the input list of length n.

    Attributes:
        graphs: the valid molecules only, in input order (``len == valid.sum()``).
        valid: ``[n]`` bool.
        errors: ``[n]`` reason each molecule failed, '' when valid.
        facts: chemistry facts of the valid molecules, aligned with ``graphs``
            (``len == valid.sum()``).
        notes: ``[n]`` remarks on valid molecules (e.g. a generated conformer), '' otherwise.
    """

    graphs: PackedGraphs
    valid: np.ndarray
    errors: list[str]
    facts: MoleculeFacts
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.valid)

    @property
    def graph_of(self) -> np.ndarray:
        """``[n]`` index of each input molecule in :attr:`graphs`, -1 when invalid."""
        return np.where(self.valid, np.cumsum(self.valid) - 1, -1)


def atoms_of(mol: Chem.Mol) -> list[Chem.Atom]:
    """The atoms of ``mol`` as a list (much faster than iterating ``mol.GetAtoms()``)."""
    return list(map(mol.GetAtomWithIdx, range(mol.GetNumAtoms())))


def bonds_of(mol: Chem.Mol) -> list[Chem.Bond]:
    """The bonds of ``mol`` as a list (much faster than iterating ``mol.GetBonds()``)."""
    return list(map(mol.GetBondWithIdx, range(mol.GetNumBonds())))


def canonical_atom_order(mol: Chem.Mol) -> Chem.Mol:
    """``mol`` with its atoms renumbered in RDKit's canonical order (ties broken, chirality used).

    Every way of writing a molecule then gives the same atom order, so the same graph: a
    tetrahedral tag (@ / @@) is relative to the order of the atom's neighbours, and even the
    summation order of a message-passing layer follows the atom order.
    """
    ranks = list(Chem.CanonicalRankAtoms(mol, breakTies=True, includeChirality=True))
    return Chem.RenumberAtoms(mol, sorted(range(len(ranks)), key=ranks.__getitem__))


#: longest SMILES read: RDKit's time grows faster than linearly with size (a 100,000-character
#: chain took 98 s); 5,000 characters is far beyond drug-like and QM9 molecules (under 40)
MAX_SMILES_LENGTH = 5_000
#: most heavy atoms of a molecule: a 1,000-atom chain featurizes in 0.03 s, 20,000 in 8 s
MAX_HEAVY_ATOMS = 1_000
#: a SMILES in an error message is cut to this many characters
SHOWN_SMILES_LENGTH = 80


def parse_smiles(smiles: Any) -> Chem.Mol:
    """RDKit molecule from a SMILES string, or :class:`InvalidMoleculeError` saying why not.

    Refused before RDKit sees them: non-strings, empty or whitespace-only strings, whitespace
    inside, characters that cannot be SMILES (non-ASCII, such as the lone surrogates that bytes
    which are not UTF-8 decode to, and control characters), more than
    :data:`MAX_SMILES_LENGTH` characters; after parsing: no atoms, dummy atoms, more than
    :data:`MAX_HEAVY_ATOMS` heavy atoms.
    """
    if not isinstance(smiles, str):
        raise InvalidMoleculeError(
            f"SMILES must be a string, got {type(smiles).__name__} {shown(smiles)}"
        )
    text = smiles.strip()
    if not text:
        raise InvalidMoleculeError("empty SMILES" if not smiles else "SMILES is only whitespace")
    if len(text) > MAX_SMILES_LENGTH:
        raise InvalidMoleculeError(
            f"SMILES of {len(text)} characters is longer than the limit of {MAX_SMILES_LENGTH}"
        )
    if len(text.split(maxsplit=1)) > 1:
        raise InvalidMoleculeError(f"SMILES {shown(smiles)} contains whitespace inside")
    if not (text.isascii() and text.isprintable()):  # one C-level pass; find the culprit only then
        bad = next(char for char in text if not (char.isascii() and char.isprintable()))
        raise InvalidMoleculeError(
            f"SMILES {shown(smiles)} has character {bad!r} at position {text.index(bad)}, "
            "which no SMILES holds (only printable ASCII)"
        )
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(text)
        if mol is None:
            raise InvalidMoleculeError(_parse_failure(smiles, text))
    if mol.GetNumAtoms() == 0:
        raise InvalidMoleculeError(f"SMILES {shown(smiles)} has no atoms")
    if mol.GetNumHeavyAtoms() > MAX_HEAVY_ATOMS:
        raise InvalidMoleculeError(
            f"molecule of {mol.GetNumHeavyAtoms()} heavy atoms is larger than the limit of "
            f"{MAX_HEAVY_ATOMS}"
        )
    if mol.HasSubstructMatch(_DUMMY_ATOM):
        raise InvalidMoleculeError(f"SMILES {shown(smiles)} has a dummy atom '*' (no element)")
    return mol


def shown(value: Any) -> str:
    """``repr(value)`` for a message, cut to :data:`SHOWN_SMILES_LENGTH` characters."""
    text = repr(value)
    if len(text) <= SHOWN_SMILES_LENGTH:
        return text
    return f"{text[: SHOWN_SMILES_LENGTH - 1]}… ({len(text)} characters)"


_DUMMY_ATOM = Chem.MolFromSmarts("[#0]")


def _parse_failure(smiles: str, text: str) -> str:
    """Why RDKit rejected ``text``: syntax, or the sanitization step that failed."""
    mol = Chem.MolFromSmiles(text, sanitize=False)
    if mol is None:
        return f"unparseable SMILES {shown(smiles)}"
    try:
        Chem.SanitizeMol(mol)
    except Chem.rdchem.MolSanitizeException as error:
        return f"invalid chemistry in {shown(smiles)}: {error}"
    return f"RDKit rejected SMILES {shown(smiles)}"


@dataclass
class _RawChunk:
    """Raw rows of consecutive input molecules, concatenated (picklable: pool workers return it).

    Attributes:
        node_raw: ``[N, n_node_features]`` float32, rows of all valid molecules.
        edge_index: ``[2, M]`` int64, local node indices.
        edge_raw: ``[M, n_edge_features]`` float32.
        pos: ``[N, 3]`` or None.
        node_counts, edge_counts: ``[n_valid]`` int64.
        facts: chemistry facts of the valid molecules.
        valid, errors, notes: one entry per input molecule.
    """

    node_raw: np.ndarray
    edge_index: np.ndarray
    edge_raw: np.ndarray
    pos: np.ndarray | None
    node_counts: np.ndarray
    edge_counts: np.ndarray
    facts: MoleculeFacts
    valid: list[bool]
    errors: list[str]
    notes: list[str]


def _concatenate(
    parts: list[np.ndarray], empty_shape: tuple[int, ...], axis: int = 0, dtype=np.float32
) -> np.ndarray:
    return (
        np.concatenate(parts, axis=axis).astype(dtype, copy=False)
        if parts
        else np.zeros(empty_shape, dtype)
    )


def _optional_item(values: Sequence | None, i: int) -> Any:
    return None if values is None else values[i]


def _worker_signals() -> None:
    """A pool worker leaves Ctrl-C to its parent, which stops the pool (a worker interrupted
    mid-task hung the pool), and dies at SIGTERM (not the parent's cleanup handler)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Featurizer(ABC):
    """Turns molecules into graphs with documented node and edge features.

    Subclasses set ``name``, ``version``, ``node_features``, ``edge_features`` and implement
    :meth:`_raw_graph`; constructor keyword arguments are the featurizer's options and must be
    returned by :meth:`options` (they are part of the spec).
    """

    name: ClassVar[str]
    version: ClassVar[int]
    node_features: ClassVar[tuple[Feature, ...]]
    edge_features: ClassVar[tuple[Feature, ...]]
    #: whether featurize_many reads ``coords`` / ``elements`` (loaders then supply geometries)
    uses_coordinates: ClassVar[bool] = False

    def options(self) -> dict[str, Any]:
        """JSON-serializable constructor options (part of :attr:`spec`)."""
        return {}

    @property
    def node_dim(self) -> int:
        return total_dim(self.node_features)

    @property
    def edge_dim(self) -> int:
        return total_dim(self.edge_features)

    @property
    def spec(self) -> dict[str, Any]:
        """JSON-serializable description of the output; stored with a trained model."""
        return {
            "name": self.name,
            "version": self.version,
            "node_dim": self.node_dim,
            "edge_dim": self.edge_dim,
            "node_features": [f.to_dict() for f in self.node_features],
            "edge_features": [f.to_dict() for f in self.edge_features],
            "options": self.options(),
        }

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({options})"

    @abstractmethod
    def _raw_graph(
        self, mol: Chem.Mol, smiles: str, coords: np.ndarray | None, elements: Sequence[str] | None
    ) -> RawGraph:
        """Raw rows of one sanitized molecule parsed from ``smiles``; raise
        :class:`InvalidMoleculeError` if impossible."""

    def featurize(
        self,
        smiles: str,
        *,
        coords: np.ndarray | None = None,
        elements: Sequence[str] | None = None,
    ) -> Data:
        """One molecule as a PyG ``Data``: ``x [n, node_dim]``, ``edge_index [2, m]``,
        ``edge_attr [m, edge_dim]`` (and ``pos [n, 3]`` for 3D).

        Raises:
            InvalidMoleculeError: the molecule cannot be featurized (message says why).
        """
        result = self.featurize_many(
            [smiles],
            n_jobs=1,
            coords=None if coords is None else [coords],
            elements=None if elements is None else [elements],
        )
        if not result.valid[0]:
            raise InvalidMoleculeError(result.errors[0])
        return result.graphs.get(0)

    def featurize_many(
        self,
        smiles: Sequence[str],
        *,
        n_jobs: int | None = None,
        coords: Sequence[np.ndarray] | None = None,
        elements: Sequence[Sequence[str]] | None = None,
    ) -> FeaturizedBatch:
        """Featurize a list of molecules; invalid ones are reported, never raised.

        Args:
            smiles: n SMILES strings.
            n_jobs: worker processes; None picks 1 below ``PARALLEL_MIN_MOLECULES`` molecules,
                else up to the number of CPUs; -1 uses all CPUs.
            coords: optional n arrays ``[n_atoms_i, 3]`` (3D featurizers).
            elements: optional n lists of element symbols matching ``coords``.
        """
        smiles = list(smiles)  # also accepts a pandas Series or any sequence, positionally
        for label, values in (("coords", coords), ("elements", elements)):
            if values is not None and len(values) != len(smiles):
                raise ValueError(f"{label} has {len(values)} entries for {len(smiles)} SMILES")
        workers = self._workers(len(smiles), n_jobs)
        if workers == 1:
            chunks = [self._raw_chunk(smiles, coords, elements)]
        else:
            bounds = np.linspace(0, len(smiles), 4 * workers + 1).astype(int)
            pieces = [
                (
                    smiles[a:b],
                    None if coords is None else coords[a:b],
                    None if elements is None else elements[a:b],
                )
                for a, b in itertools.pairwise(bounds)
            ]
            # fork (where the OS has it) keeps start-up cheap: workers run RDKit and numpy, never torch
            method = "fork" if "fork" in get_all_start_methods() else None
            context = get_context(method)
            with ProcessPoolExecutor(workers, context, initializer=_worker_signals) as pool:
                try:
                    chunks = list(pool.map(self._raw_chunk_args, pieces))
                except BaseException:  # Ctrl-C, SIGTERM: drop the pieces not started
                    pool.shutdown(cancel_futures=True)
                    raise
        return self._pack(chunks)

    @staticmethod
    def _workers(n: int, n_jobs: int | None) -> int:
        """Worker processes for ``n`` molecules: at most the usable cores and ``n``."""
        n_jobs = Featurizer.check_n_jobs(n_jobs)
        cpus = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )
        if n_jobs is None:
            return (
                1
                if n < PARALLEL_MIN_MOLECULES
                else min(cpus, max(1, n // (PARALLEL_MIN_MOLECULES // 2)))
            )
        return max(1, min(cpus if n_jobs == -1 else n_jobs, cpus, n))

    @staticmethod
    def check_n_jobs(n_jobs: int | None) -> int | None:
        """``n_jobs`` if valid: None, -1 or 1 to :data:`MAX_N_JOBS` (more workers than usable
        cores are later capped at the cores); else a ValueError naming the value."""
        if n_jobs is None:
            return None
        is_integer = isinstance(n_jobs, int | np.integer) and not isinstance(n_jobs, bool)
        if not is_integer or not (n_jobs == -1 or 1 <= n_jobs <= MAX_N_JOBS):
            raise ValueError(
                f"n_jobs must be an integer from 1 to {MAX_N_JOBS} (capped at the usable cores), "
                f"-1 (all CPUs) or None (auto), got {n_jobs!r}"
            )
        return int(n_jobs)

    def _raw_chunk_args(self, args: tuple) -> _RawChunk:
        return self._raw_chunk(*args)

    def _raw_chunk(
        self,
        smiles: Sequence[str],
        coords: Sequence[np.ndarray] | None,
        elements: Sequence[Sequence[str]] | None,
    ) -> _RawChunk:
        graphs: list[RawGraph] = []
        facts: list[FactRow] = []
        valid, errors, notes = [], [], []
        for i, text in enumerate(smiles):
            try:
                mol = parse_smiles(text)
                raw = self._raw_graph(
                    mol, text, _optional_item(coords, i), _optional_item(elements, i)
                )
            except InvalidMoleculeError as error:
                valid.append(False)
                errors.append(str(error))
                notes.append("")
                continue
            graphs.append(raw)
            facts.append(molecule_facts(mol, text))
            valid.append(True)
            errors.append("")
            notes.append(raw.note)
        positions = [g.pos for g in graphs if g.pos is not None]
        return _RawChunk(
            node_raw=_concatenate([g.node_raw for g in graphs], (0, len(self.node_features))),
            edge_index=_concatenate([g.edge_index for g in graphs], (2, 0), axis=1, dtype=np.int64),
            edge_raw=_concatenate([g.edge_raw for g in graphs], (0, len(self.edge_features))),
            pos=_concatenate(positions, (0, 3)) if positions else None,
            node_counts=np.array([len(g.node_raw) for g in graphs], dtype=np.int64),
            edge_counts=np.array([g.edge_index.shape[1] for g in graphs], dtype=np.int64),
            facts=MoleculeFacts.from_rows(facts),
            valid=valid,
            errors=errors,
            notes=notes,
        )

    def _pack(self, chunks: list[_RawChunk]) -> FeaturizedBatch:
        def joined(name: str, axis: int = 0) -> np.ndarray:
            return np.concatenate([getattr(chunk, name) for chunk in chunks], axis=axis)

        def listed(name: str) -> list:
            return [item for chunk in chunks for item in getattr(chunk, name)]

        zero = np.zeros(1, dtype=np.int64)
        positions = [chunk.pos for chunk in chunks if chunk.pos is not None]
        graphs = PackedGraphs(
            x=torch.from_numpy(encode(self.node_features, joined("node_raw"))),
            edge_index=torch.from_numpy(joined("edge_index", axis=1)),
            edge_attr=torch.from_numpy(encode(self.edge_features, joined("edge_raw"))),
            node_ptr=torch.from_numpy(np.concatenate([zero, np.cumsum(joined("node_counts"))])),
            edge_ptr=torch.from_numpy(np.concatenate([zero, np.cumsum(joined("edge_counts"))])),
            pos=torch.from_numpy(np.concatenate(positions)) if positions else None,
        )
        return FeaturizedBatch(
            graphs=graphs,
            valid=np.array(listed("valid"), dtype=bool),
            errors=listed("errors"),
            facts=MoleculeFacts.concatenate([chunk.facts for chunk in chunks]),
            notes=listed("notes"),
        )
