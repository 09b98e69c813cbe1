"""The default 2D featurizer: molecular graph of heavy atoms from a SMILES string.

Hydrogens are implicit (counted in ``num_hs``) unless written as explicit atoms (``[H][H]``).
Every bond gives two directed edges, ``i -> j`` then ``j -> i``, in RDKit bond order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rdkit import Chem
from rdkit.Chem import Atom, Bond

from molmtl.featurizers._base import Featurizer, RawGraph, atoms_of, bonds_of
from molmtl.featurizers._registry import register
from molmtl.featurizers.features import Feature

_ELEMENTS = ("H", "C", "N", "O", "F", "S", "Cl", "Br", "I", "P", "B", "Si")
_TABLE = Chem.GetPeriodicTable()
_HYBRIDIZATIONS = ("S", "SP", "SP2", "SP3", "SP3D", "SP3D2")
_BOND_TYPES = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
_STEREO = ("STEREONONE", "STEREOANY", "STEREOZ", "STEREOE", "STEREOCIS", "STEREOTRANS")
_MASSES = np.array([_TABLE.GetAtomicWeight(z) for z in range(119)])
_CHI_UNSPECIFIED = int(Chem.ChiralType.CHI_UNSPECIFIED)
_STEREO_NONE = int(Chem.BondStereo.STEREONONE)

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
        "tetrahedral chirality tag from the SMILES (@ = CCW, @@ = CW)",
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
    version = 1
    node_features = NODE_FEATURES_2D
    edge_features = EDGE_FEATURES_2D

    def _raw_graph(
        self, mol: Chem.Mol, smiles: str, coords: np.ndarray | None, elements: Sequence[str] | None
    ) -> RawGraph:
        # Getting an RDKit Atom/Bond object costs ~1 µs, a getter ~0.2 µs: fetch each object once,
        # read plain getters with map(), and take ring membership, degree and mass from
        # whole-molecule data. All one-hot encoding happens later, vectorized over the dataset.
        n_atoms = mol.GetNumAtoms()
        atoms, bonds = atoms_of(mol), bonds_of(mol)
        atomic_numbers = np.fromiter(map(Atom.GetAtomicNum, atoms), dtype=np.int64, count=n_atoms)
        begin = np.fromiter(map(Bond.GetBeginAtomIdx, bonds), dtype=np.int64, count=len(bonds))
        end = np.fromiter(map(Bond.GetEndAtomIdx, bonds), dtype=np.int64, count=len(bonds))
        ring_info = mol.GetRingInfo()
        atom_in_ring = np.zeros(n_atoms)
        atom_in_ring[[i for ring in ring_info.AtomRings() for i in ring]] = 1.0
        bond_in_ring = np.zeros(len(bonds))
        bond_in_ring[[i for ring in ring_info.BondRings() for i in ring]] = 1.0

        node_raw = np.empty((n_atoms, len(self.node_features)))
        node_raw[:, 0] = atomic_numbers
        node_raw[:, 1] = np.bincount(np.concatenate([begin, end]), minlength=n_atoms)
        node_raw[:, 3] = list(map(Atom.GetTotalNumHs, atoms))
        node_raw[:, 4] = list(map(Atom.GetHybridization, atoms))
        node_raw[:, 7] = list(map(Atom.GetIsAromatic, atoms))
        node_raw[:, 8] = atom_in_ring
        node_raw[:, 9] = _MASSES[atomic_numbers]
        # in SMILES, charges and radicals need bracket atoms, chirality an '@', bond stereo '/' or '\\'
        brackets = "[" in smiles
        node_raw[:, 2] = list(map(Atom.GetFormalCharge, atoms)) if brackets else 0
        node_raw[:, 6] = list(map(Atom.GetNumRadicalElectrons, atoms)) if brackets else 0
        node_raw[:, 5] = list(map(Atom.GetChiralTag, atoms)) if "@" in smiles else _CHI_UNSPECIFIED

        edge_raw = np.empty((2 * len(bonds), len(self.edge_features)))
        edge_raw[0::2, 0] = list(map(Bond.GetBondType, bonds))
        edge_raw[0::2, 1] = list(map(Bond.GetIsConjugated, bonds))
        edge_raw[0::2, 2] = bond_in_ring
        edge_raw[0::2, 3] = (
            list(map(Bond.GetStereo, bonds)) if "/" in smiles or "\\" in smiles else _STEREO_NONE
        )
        edge_raw[1::2] = edge_raw[0::2]
        # edge 2k is bond k forwards, edge 2k + 1 backwards
        edge_index = np.empty((2, 2 * len(bonds)), dtype=np.int64)
        edge_index[0, 0::2] = edge_index[1, 1::2] = begin
        edge_index[1, 0::2] = edge_index[0, 1::2] = end
        return RawGraph(node_raw, edge_index, edge_raw)
