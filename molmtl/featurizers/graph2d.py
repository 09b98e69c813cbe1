"""The default 2D featurizer: molecular graph of heavy atoms from a SMILES string.

Hydrogens are implicit (counted in ``num_hs``) unless written as explicit atoms (``[H][H]``).
Atoms are in RDKit's canonical order and bonds sorted by their atoms' indices, so every way of
writing a molecule (atom order, ring-closure digits) gives the identical graph and prediction.
Every bond gives two directed edges, ``i -> j`` (``i < j``) then ``j -> i``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rdkit import Chem
from rdkit.Chem import Atom, Bond

from molmtl.featurizers._base import (
    Featurizer,
    RawGraph,
    atoms_of,
    bonds_of,
    canonical_atom_order,
)
from molmtl.featurizers._registry import register
from molmtl.featurizers.features import Feature

_ELEMENTS = ("H", "C", "N", "O", "F", "S", "Cl", "Br", "I", "P", "B", "Si")
_TABLE = Chem.GetPeriodicTable()
_HYBRIDIZATIONS = ("S", "SP", "SP2", "SP3", "SP3D", "SP3D2")
_BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
_STEREO = ("STEREONONE", "STEREOANY", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS")
_MASSES = [_TABLE.GetAtomicWeight(z) for z in range(119)]
_CHI_UNSPECIFIED = int(Chem.ChiralType.CHI_UNSPECIFIED)
_STEREO_NONE = int(Chem.BondStereo.STEREONONE)
_CW, _CCW = Chem.ChiralType.CHI_TETRAHEDRAL_CW, Chem.ChiralType.CHI_TETRAHEDRAL_CCW

NODE_FEATURES_2D: tuple[Feature, ...] = (
    Feature(
        "element",
        "chemical element (one-hot; other elements share the last column)",
        values=tuple(_TABLE.GetAtomicNumber(s) for s in _ELEMENTS),
        labels=_ELEMENTS,
        other=True,
    ),
    Feature(
        "degree",
        "number of bonded heavy atoms (explicit neighbours)",
        values=tuple(range(6)),
        other=True,
    ),
    Feature("formal_charge", "formal charge", values=(-2, -1, 0, 1, 2), other=True),
    Feature(
        "num_hs",
        "total number of attached hydrogens (implicit + explicit)",
        values=tuple(range(5)),
        other=True,
    ),
    Feature(
        "hybridization",
        "RDKit hybridization (unspecified falls in other)",
        values=tuple(int(Chem.HybridizationType.names[h]) for h in _HYBRIDIZATIONS),
        labels=_HYBRIDIZATIONS,
        other=True,
    ),
    Feature(
        "chirality",
        "tetrahedral chirality from the SMILES: CW or CCW with the neighbours in atom order",
        values=tuple(
            int(Chem.ChiralType.names[c])
            for c in ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW")
        ),
        labels=("none", "CW", "CCW"),
        other=True,
    ),
    Feature("radical_electrons", "number of radical electrons", values=(0, 1, 2), other=True),
    Feature("aromatic", "atom is aromatic (1/0)"),
    Feature("in_ring", "atom is in a ring (1/0)"),
    Feature("mass", "atomic mass in daltons", scale=0.01),
)

EDGE_FEATURES_2D: tuple[Feature, ...] = (
    Feature(
        "bond_type",
        "bond order (RDKit, aromatic bonds as aromatic)",
        values=tuple(int(Chem.BondType.names[b]) for b in _BOND_TYPES),
        labels=tuple(b.lower() for b in _BOND_TYPES),
        other=True,
    ),
    Feature("conjugated", "bond is conjugated (1/0)"),
    Feature("in_ring", "bond is in a ring (1/0)"),
    Feature(
        "stereo",
        "double-bond stereo from the SMILES",
        values=tuple(int(Chem.BondStereo.names[s]) for s in _STEREO),
        labels=tuple(s.removeprefix("STEREO").lower() for s in _STEREO),
        other=True,
    ),
)


@register("2d")
class Graph2DFeaturizer(Featurizer):
    """SMILES → heavy-atom graph with the features of ``NODE_FEATURES_2D`` / ``EDGE_FEATURES_2D``.

    ``coords`` and ``elements`` are accepted and ignored, so the same call serves 2D and 3D.
    """

    name = "2d"
    #: 2: canonical atom and bond order (version 1 kept the SMILES' order, so the chirality
    #: tags of one molecule written two ways could differ)
    version = 2
    node_features = NODE_FEATURES_2D
    edge_features = EDGE_FEATURES_2D

    def _raw_graph(
        self, mol: Chem.Mol, smiles: str, coords: np.ndarray | None, elements: Sequence[str] | None
    ) -> RawGraph:
        # Getting an RDKit Atom/Bond object costs ~1 µs, a getter ~0.2 µs and a small numpy call
        # ~1 µs: fetch each object once, read getters with map() into lists, and make one array
        # per molecule for nodes and one for bonds. One-hot encoding happens later, vectorized.
        mol = canonical_atom_order(mol)
        atoms, bonds = atoms_of(mol), bonds_of(mol)
        n_atoms, n_bonds = len(atoms), len(bonds)
        atomic_numbers = list(map(Atom.GetAtomicNum, atoms))
        # in SMILES, charges and radicals need bracket atoms, chirality an '@', bond stereo '/' or '\\'
        brackets = "[" in smiles
        node_raw = np.array(
            [
                atomic_numbers,
                list(map(Atom.GetDegree, atoms)),
                list(map(Atom.GetFormalCharge, atoms)) if brackets else [0] * n_atoms,
                list(map(Atom.GetTotalNumHs, atoms)),
                list(map(Atom.GetHybridization, atoms)),
                _canonical_chiral_tags(atoms) if "@" in smiles else [_CHI_UNSPECIFIED] * n_atoms,
                list(map(Atom.GetNumRadicalElectrons, atoms)) if brackets else [0] * n_atoms,
                list(map(Atom.GetIsAromatic, atoms)),
                list(map(Atom.IsInRing, atoms)),
                [_MASSES[z] for z in atomic_numbers],
            ],
            dtype=np.float64,
        ).T
        if not n_bonds:
            return RawGraph(
                node_raw, np.zeros((2, 0), dtype=np.int64), np.zeros((0, len(self.edge_features)))
            )
        stereo = "/" in smiles or "\\" in smiles
        bond_rows = np.array(
            [
                list(map(Bond.GetBeginAtomIdx, bonds)),
                list(map(Bond.GetEndAtomIdx, bonds)),
                list(map(Bond.GetBondType, bonds)),
                list(map(Bond.GetIsConjugated, bonds)),
                list(map(Bond.IsInRing, bonds)),
                list(map(Bond.GetStereo, bonds)) if stereo else [_STEREO_NONE] * n_bonds,
            ],
            dtype=np.int64,
        )
        # RenumberAtoms keeps the bonds in input order: orient each bond low -> high index, sort
        bond_rows[0:2] = np.sort(bond_rows[0:2], axis=0)
        bond_rows = bond_rows[:, np.lexsort((bond_rows[1], bond_rows[0]))]
        # edge 2k is bond k forwards, edge 2k + 1 backwards
        edge_index = np.stack([bond_rows[0:2], bond_rows[1::-1]], axis=2).reshape(2, 2 * n_bonds)
        return RawGraph(node_raw, edge_index, np.repeat(bond_rows[2:].T, 2, axis=0))


def _canonical_chiral_tags(atoms: list[Atom]) -> list[int]:
    """Each atom's tetrahedral tag relative to its neighbours in ascending index order.

    RDKit's tag is relative to the order of the atom's bonds, which follows the SMILES as
    written even after the atoms are renumbered; an odd permutation from that order to the
    sorted one swaps CW and CCW (an implicit hydrogen keeps its place in either convention).
    """
    tags = []
    for atom in atoms:
        tag = atom.GetChiralTag()
        if tag in (_CW, _CCW):
            index = atom.GetIdx()
            neighbours = [bond.GetOtherAtomIdx(index) for bond in atom.GetBonds()]
            inversions = sum(a > b for i, a in enumerate(neighbours) for b in neighbours[i + 1 :])
            if inversions % 2:
                tag = _CCW if tag == _CW else _CW
        tags.append(int(tag))
    return tags
