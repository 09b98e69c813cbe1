"""The 3D featurizer: the input of the standard QM9 multi-task benchmark (Nash-MTL protocol).

Nodes are all atoms, hydrogens included, in the order of the given coordinates. The graph is
complete and directed without self-loops (edge order: source-major, as PyG's ``Complete``
transform); edge features are the bond-type one-hot (zeros for non-bonded pairs) and the
distance in Å (as PyG's ``Distance(norm=False)``).

Bonds and atom features come from the SMILES, matched onto the coordinates: the geometry's
connectivity (RDKit ``DetermineConnectivity``) must be isomorphic to the SMILES graph with
explicit hydrogens, and the isomorphism maps SMILES atoms to coordinate rows. A SMILES
without coordinates gets an RDKit conformer (ETKDG, then MMFF), seeded, and a note saying so.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import AllChem, rdDetermineBonds
from rdkit.Geometry import Point3D

from molmtl.featurizers._base import (
    Featurizer,
    InvalidMoleculeError,
    RawGraph,
    atoms_of,
    bonds_of,
)
from molmtl.featurizers._registry import register
from molmtl.featurizers.features import Feature

_TABLE = Chem.GetPeriodicTable()
#: the elements of the element one-hot, QM9's: other molecules are invalid for this featurizer
ELEMENTS_3D: tuple[str, ...] = ("H", "C", "N", "O", "F")
_HYBRIDIZATION = Chem.HybridizationType
#: most heavy atoms the 3D featurizer takes: conformer embedding time grows steeply (a 40-carbon
#: chain 0.3 s, 60 carbons 0.9 s, a 300-carbon chain 92 s before failing) and the complete
#: graph has n² edges; QM9 molecules have at most 9
MAX_HEAVY_ATOMS_3D = 40

NODE_FEATURES_3D: tuple[Feature, ...] = (
    Feature(
        "element",
        "chemical element, one-hot (only QM9's elements are accepted)",
        values=tuple(_TABLE.GetAtomicNumber(s) for s in ELEMENTS_3D),
        labels=ELEMENTS_3D,
    ),
    Feature("atomic_number", "atomic number"),
    Feature("aromatic", "atom is aromatic in the sanitized SMILES molecule (1/0)"),
    Feature("sp", "hybridization is SP (1/0)"),
    Feature("sp2", "hybridization is SP2 (1/0)"),
    Feature("sp3", "hybridization is SP3 (1/0)"),
    Feature("num_hs", "number of bonded hydrogen atoms"),
)

EDGE_FEATURES_3D: tuple[Feature, ...] = (
    Feature(
        "single", "pair bonded by a single bond (1/0; all four bond columns 0 when not bonded)"
    ),
    Feature("double", "pair bonded by a double bond (1/0)"),
    Feature("triple", "pair bonded by a triple bond (1/0)"),
    Feature("aromatic_bond", "pair bonded by an aromatic bond (1/0)"),
    Feature("distance", "interatomic distance in Å"),
)

_BOND_COLUMN = {
    Chem.BondType.SINGLE: 0,
    Chem.BondType.DOUBLE: 1,
    Chem.BondType.TRIPLE: 2,
    Chem.BondType.AROMATIC: 3,
}


def skeleton(atomic_numbers: Sequence[int], bonds: Sequence[tuple[int, int]]) -> Chem.Mol:
    """Element-and-connectivity-only molecule (all bonds single), for graph matching."""
    mol = Chem.RWMol()
    for z in atomic_numbers:
        atom = Chem.Atom(int(z))
        atom.SetNoImplicit(True)
        mol.AddAtom(atom)
    for i, j in bonds:
        mol.AddBond(int(i), int(j), Chem.BondType.SINGLE)
    mol = mol.GetMol()
    mol.UpdatePropertyCache(strict=False)
    Chem.FastFindRings(mol)
    return mol


def perceive_bonds(atomic_numbers: Sequence[int], coords: np.ndarray) -> list[tuple[int, int]]:
    """Bonded atom pairs from 3D coordinates (RDKit's connect-the-dots connectivity)."""
    mol = Chem.RWMol()
    conformer = Chem.Conformer(len(atomic_numbers))
    for i, (z, xyz) in enumerate(zip(atomic_numbers, coords, strict=True)):
        mol.AddAtom(Chem.Atom(int(z)))
        conformer.SetAtomPosition(i, Point3D(*map(float, xyz)))
    mol.AddConformer(conformer)
    rdDetermineBonds.DetermineConnectivity(mol)
    return [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in bonds_of(mol)]


def _best_heavy_match(
    mol: Chem.Mol,
    geometry_numbers: list[int],
    geometry_bonds: list[tuple[int, int]],
    coords: np.ndarray,
    hydrogens_near: np.ndarray,
) -> dict[int, int] | None:
    """Heavy-atom mapping SMILES atom → coordinate row, or None.

    Among the graph matches (symmetric molecules have several), keep those giving every heavy
    atom its SMILES number of hydrogens (``hydrogens_near[row]``: geometry hydrogens nearest to
    that row), then take the one putting higher bond orders on shorter distances (this decides,
    e.g., which ring N carries the H in a tautomer-like ring, or which O of a C(=O)O group is C=O).
    """
    heavy_smiles = [a.GetIdx() for a in atoms_of(mol) if a.GetAtomicNum() > 1]
    heavy_geometry = [k for k, z in enumerate(geometry_numbers) if z > 1]
    smiles_rank = {atom: rank for rank, atom in enumerate(heavy_smiles)}
    geometry_rank = {atom: rank for rank, atom in enumerate(heavy_geometry)}
    heavy_bonds = [
        b
        for b in bonds_of(mol)
        if b.GetBeginAtomIdx() in smiles_rank and b.GetEndAtomIdx() in smiles_rank
    ]
    query = skeleton(
        [mol.GetAtomWithIdx(i).GetAtomicNum() for i in heavy_smiles],
        [(smiles_rank[b.GetBeginAtomIdx()], smiles_rank[b.GetEndAtomIdx()]) for b in heavy_bonds],
    )
    target = skeleton(
        [geometry_numbers[k] for k in heavy_geometry],
        [
            (geometry_rank[i], geometry_rank[j])
            for i, j in geometry_bonds
            if i in geometry_rank and j in geometry_rank
        ],
    )
    matches = target.GetSubstructMatches(query, uniquify=False, maxMatches=1000)
    if not matches:
        return None
    rows = np.asarray(heavy_geometry)[np.array(matches, dtype=np.int64)]  # [n_matches, n_heavy]
    smiles_hydrogens = np.array(
        [mol.GetAtomWithIdx(i).GetTotalNumHs(includeNeighbors=True) for i in heavy_smiles]
    )
    rows = rows[(hydrogens_near[rows] == smiles_hydrogens).all(1)]
    if len(rows) == 0:
        return None
    begin = np.array([smiles_rank[b.GetBeginAtomIdx()] for b in heavy_bonds], dtype=np.int64)
    end = np.array([smiles_rank[b.GetEndAtomIdx()] for b in heavy_bonds], dtype=np.int64)
    orders = np.array([b.GetBondTypeAsDouble() for b in heavy_bonds])
    lengths = np.linalg.norm(
        coords[rows[:, begin]] - coords[rows[:, end]], axis=-1
    )  # [n_matches, n_bonds]
    best = rows[np.argmin((lengths * orders).sum(1))]
    return dict(zip(heavy_smiles, best.tolist(), strict=True))


def match_to_geometry(mol: Chem.Mol, elements: Sequence[str], coords: np.ndarray) -> np.ndarray:
    """Row of ``coords`` of each atom of ``mol`` (explicit hydrogens), or InvalidMoleculeError.

    Heavy atoms are matched as a graph: every SMILES bond must be a geometric contact (the
    geometry may show extra contacts, e.g. across strained bicyclic rings). Each hydrogen then
    goes to a geometry hydrogen nearest to its heavy atom's match.

    Args:
        mol: molecule with explicit hydrogens, from the SMILES.
        elements: element symbol of each coordinate row.
        coords: ``[n_atoms, 3]`` in Å.
    """
    smiles_numbers = [a.GetAtomicNum() for a in atoms_of(mol)]
    try:
        geometry_numbers = [_TABLE.GetAtomicNumber(str(e)) for e in elements]
    except RuntimeError:
        raise InvalidMoleculeError(f"unknown element symbol among {list(elements)}") from None
    if sorted(smiles_numbers) != sorted(geometry_numbers):
        raise InvalidMoleculeError(
            f"atoms of the SMILES ({Chem.rdMolDescriptors.CalcMolFormula(mol)}) differ from the coordinates' "
            f"elements ({''.join(elements)})"
        )
    hydrogen_parents = [
        [n.GetAtomicNum() for n in a.GetNeighbors()] for a in atoms_of(mol) if a.GetAtomicNum() == 1
    ]
    if max(smiles_numbers) == 1 or any(len(p) != 1 or p[0] == 1 for p in hydrogen_parents):
        raise InvalidMoleculeError(
            "unsupported: every hydrogen must be bonded to exactly one heavy atom"
        )
    heavy_rows = np.array([k for k, z in enumerate(geometry_numbers) if z > 1], dtype=np.int64)
    hydrogen_rows = np.array([k for k, z in enumerate(geometry_numbers) if z == 1], dtype=np.int64)
    distances = np.linalg.norm(coords[hydrogen_rows, None] - coords[None, heavy_rows], axis=-1)
    nearest = heavy_rows[distances.argmin(1)] if len(hydrogen_rows) else hydrogen_rows
    hydrogens_near = np.bincount(nearest, minlength=len(geometry_numbers))
    geometry_bonds = perceive_bonds(geometry_numbers, coords)
    heavy = _best_heavy_match(mol, geometry_numbers, geometry_bonds, coords, hydrogens_near)
    if heavy is None:
        raise InvalidMoleculeError(
            f"the SMILES graph ({mol.GetNumBonds()} bonds with hydrogens) is not found in the geometry "
            f"({len(geometry_bonds)} contacts, hydrogens on their nearest heavy atom)"
        )
    free = {row: list(hydrogen_rows[nearest == row]) for row in heavy_rows.tolist()}
    order = np.empty(len(smiles_numbers), dtype=np.int64)
    for atom in atoms_of(mol):
        if atom.GetAtomicNum() > 1:
            order[atom.GetIdx()] = heavy[atom.GetIdx()]
        else:  # the counts were checked in the match, so a hydrogen is always free here
            order[atom.GetIdx()] = free[heavy[atom.GetNeighbors()[0].GetIdx()]].pop(0)
    return order


@register("3d")
class Graph3DFeaturizer(Featurizer):
    """SMILES + coordinates → complete graph with ``NODE_FEATURES_3D`` / ``EDGE_FEATURES_3D``.

    Args:
        generate_conformers: embed a conformer (ETKDG v3, then MMFF) when no coordinates are
            given; otherwise such molecules are invalid.
        seed: random seed of the conformer embedding.
    """

    name = "3d"
    #: 2: a generated conformer is embedded in canonical atom order, so every way of writing a
    #: molecule gives the same conformer and prediction
    version = 2
    node_features = NODE_FEATURES_3D
    edge_features = EDGE_FEATURES_3D
    uses_coordinates = True

    def __init__(self, generate_conformers: bool = True, seed: int = 0) -> None:
        self.generate_conformers = bool(generate_conformers)
        self.seed = int(seed)

    def options(self) -> dict:
        return {"generate_conformers": self.generate_conformers, "seed": self.seed}

    def _conformer(self, mol: Chem.Mol) -> np.ndarray:
        """``[n_atoms, 3]`` coordinates of an embedded conformer of ``mol`` (explicit H)."""
        parameters = AllChem.ETKDGv3()
        parameters.randomSeed = self.seed
        with rdBase.BlockLogs():
            if AllChem.EmbedMolecule(mol, parameters) != 0:
                raise InvalidMoleculeError("conformer generation (ETKDG) failed")
            if AllChem.MMFFHasAllMoleculeParams(mol):
                AllChem.MMFFOptimizeMolecule(mol)
        return mol.GetConformer().GetPositions()

    def _raw_graph(
        self, mol: Chem.Mol, smiles: str, coords: np.ndarray | None, elements: Sequence[str] | None
    ) -> RawGraph:
        if mol.GetNumHeavyAtoms() > MAX_HEAVY_ATOMS_3D:
            raise InvalidMoleculeError(
                f"molecule of {mol.GetNumHeavyAtoms()} heavy atoms is larger than the 3D "
                f"featurizer's limit of {MAX_HEAVY_ATOMS_3D}"
            )
        outside = sorted({a.GetSymbol() for a in atoms_of(mol) if a.GetSymbol() not in ELEMENTS_3D})
        if outside:
            raise InvalidMoleculeError(
                f"element(s) {', '.join(outside)} unsupported by the 3D featurizer (only {', '.join(ELEMENTS_3D)})"
            )
        if coords is None:  # the conformer, and so the prediction, then follow no way of writing
            mol = _canonical_molecule(mol)
        mol = Chem.AddHs(mol)
        note = ""
        if coords is None:
            if not self.generate_conformers:
                raise InvalidMoleculeError("no coordinates given and conformer generation is off")
            coords = self._conformer(mol)
            order = np.arange(mol.GetNumAtoms())
            note = f"conformer generated (RDKit ETKDG + MMFF, seed {self.seed})"
        else:
            coords = np.asarray(coords, dtype=np.float64)
            if elements is None or len(elements) != len(coords) or coords.shape[-1:] != (3,):
                raise InvalidMoleculeError(
                    "coordinates need a [n_atoms, 3] array and one element symbol per atom"
                )
            order = match_to_geometry(mol, elements, coords)
        n = len(order)
        # position of SMILES atom i in the output is order[i] (the coordinate row)
        atoms = atoms_of(mol)
        hybridization = [a.GetHybridization() for a in atoms]
        atomic_numbers = np.array([a.GetAtomicNum() for a in atoms])
        node_raw = np.zeros((n, len(self.node_features)))
        node_raw[order, 0] = atomic_numbers
        node_raw[order, 1] = atomic_numbers
        node_raw[order, 2] = [a.GetIsAromatic() for a in atoms]
        for column, kind in (
            (3, _HYBRIDIZATION.SP),
            (4, _HYBRIDIZATION.SP2),
            (5, _HYBRIDIZATION.SP3),
        ):
            node_raw[order, column] = [h == kind for h in hybridization]
        bond_type = np.full((n, n), -1)
        for bond in bonds_of(mol):
            i, j = order[bond.GetBeginAtomIdx()], order[bond.GetEndAtomIdx()]
            bond_type[i, j] = bond_type[j, i] = _BOND_COLUMN.get(bond.GetBondType(), -1)
        is_hydrogen = node_raw[:, 1] == 1
        node_raw[:, 6] = ((bond_type >= 0) & is_hydrogen[None, :]).sum(1)

        source, target = np.nonzero(~np.eye(n, dtype=bool))  # source-major, no self-loops
        edge_raw = np.zeros((len(source), len(self.edge_features)))
        pair_type = bond_type[source, target]
        bonded = pair_type >= 0
        edge_raw[np.flatnonzero(bonded), pair_type[bonded]] = 1.0
        edge_raw[:, 4] = np.linalg.norm(coords[target] - coords[source], axis=1)
        return RawGraph(node_raw, np.stack([source, target]), edge_raw, coords, note)


def _canonical_molecule(mol: Chem.Mol) -> Chem.Mol:
    """``mol`` read back from its canonical SMILES: atoms and bonds in canonical order, which
    the embedding of a conformer depends on. Unchanged in the rare case RDKit cannot re-read it."""
    with rdBase.BlockLogs():
        canonical = Chem.MolFromSmiles(Chem.MolToSmiles(mol))
    return mol if canonical is None else canonical
