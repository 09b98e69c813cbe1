"""The 2D featurizer against a slow per-atom reference and hand-checked values."""

import numpy as np
import pytest
import torch
from rdkit import Chem

from molmtl import featurizers
from molmtl.featurizers.features import encode
from molmtl.featurizers.graph2d import EDGE_FEATURES_2D, NODE_FEATURES_2D
from tests.featurizers.molecule_sets import DIVERSE_SMILES

FEATURIZER = featurizers.get("2d")


def reference_graph(smiles: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Obviously-correct per-atom version: every value read from its own RDKit getter.

    Atoms in canonical rank order, bonds sorted; the chirality tag is RDKit's raw one (the
    featurizer re-expresses it for canonical neighbour order: compare with `without_cw_ccw`).
    """
    mol = Chem.MolFromSmiles(smiles)
    ranks = list(Chem.CanonicalRankAtoms(mol, breakTies=True))
    mol = Chem.RenumberAtoms(mol, [ranks.index(r) for r in range(len(ranks))])
    node_raw = [
        (
            a.GetAtomicNum(),
            a.GetDegree(),
            a.GetFormalCharge(),
            a.GetTotalNumHs(),
            int(a.GetHybridization()),
            int(a.GetChiralTag()),
            a.GetNumRadicalElectrons(),
            a.GetIsAromatic(),
            a.IsInRing(),
            Chem.GetPeriodicTable().GetAtomicWeight(a.GetAtomicNum()),
        )
        for a in mol.GetAtoms()
    ]
    edges, edge_raw = [], []
    bonds = sorted(mol.GetBonds(), key=lambda b: sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx())))
    for b in bonds:
        row = (int(b.GetBondType()), b.GetIsConjugated(), b.IsInRing(), int(b.GetStereo()))
        low, high = sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))
        edges += [(low, high), (high, low)]
        edge_raw += [row, row]
    x = encode(NODE_FEATURES_2D, np.array(node_raw, dtype=float))
    edge_attr = encode(EDGE_FEATURES_2D, np.array(edge_raw, dtype=float).reshape(-1, 4))
    return x, np.array(edges, dtype=np.int64).reshape(-1, 2).T, edge_attr


@pytest.mark.parametrize("smiles", DIVERSE_SMILES)
def test_matches_per_atom_reference(smiles):
    data = FEATURIZER.featurize(smiles)
    x, edge_index, edge_attr = reference_graph(smiles)
    np.testing.assert_allclose(without_cw_ccw(data.x.numpy()), without_cw_ccw(x), rtol=1e-6)
    np.testing.assert_array_equal(data.edge_index.numpy(), edge_index)
    np.testing.assert_array_equal(data.edge_attr.numpy(), edge_attr)
    assert data.x.dtype == torch.float32 and data.edge_index.dtype == torch.long


def without_cw_ccw(x: np.ndarray) -> np.ndarray:
    """``x`` with the CW and CCW columns merged into one "chiral" column."""
    cw, ccw = column("chirality", "CW"), column("chirality", "CCW")
    merged = x.copy()
    merged[:, cw] += merged[:, ccw]
    return np.delete(merged, ccw, axis=1)


@pytest.mark.parametrize(
    "smiles", [s for s in DIVERSE_SMILES if "@" in s] + ["N[C@@H]1C[C@H]1O", "C/C=C/C=O"]
)
def test_every_way_of_writing_a_molecule_gives_the_same_graph(smiles):
    mol = Chem.MolFromSmiles(smiles)
    reference = FEATURIZER.featurize(smiles)
    for written in Chem.MolToRandomSmilesVect(mol, 20, randomSeed=7):
        other = FEATURIZER.featurize(written)
        for key in ("x", "edge_index", "edge_attr"):
            assert torch.equal(getattr(reference, key), getattr(other, key)), (written, key)


def test_enantiomers_and_diastereomers_stay_apart():
    forms = ["C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O"]
    graphs = [FEATURIZER.featurize(s).x for s in forms]
    assert not torch.equal(*graphs)
    cis_trans = [FEATURIZER.featurize(s).x for s in ("N[C@@H]1C[C@H]1O", "N[C@@H]1C[C@@H]1O")]
    assert not torch.equal(*cis_trans)


@pytest.mark.parametrize("smiles", DIVERSE_SMILES)
def test_shapes_and_one_hot_blocks(smiles):
    data = FEATURIZER.featurize(smiles)
    mol = Chem.MolFromSmiles(smiles)
    assert data.x.shape == (mol.GetNumAtoms(), FEATURIZER.node_dim)
    assert data.edge_attr.shape == (2 * mol.GetNumBonds(), FEATURIZER.edge_dim)
    offset = 0
    for feature in NODE_FEATURES_2D:
        block = data.x[:, offset : offset + feature.dim]
        if feature.categorical:
            assert torch.all(block.sum(1) == 1), feature.name
        offset += feature.dim


def column(name: str, label: str) -> int:
    offset = 0
    for feature in NODE_FEATURES_2D:
        if feature.name == name:
            return offset + feature.column_labels.index(label)
        offset += feature.dim
    raise KeyError(name)


def test_known_values_of_ethanol_and_glycine_zwitterion():
    # rows are in canonical atom order: find each atom by its element
    ethanol = FEATURIZER.featurize("CCO").x
    oxygen = ethanol[ethanol[:, column("element", "O")] == 1]
    carbons = ethanol[ethanol[:, column("element", "C")] == 1]
    assert len(oxygen) == 1 and oxygen[0, column("hybridization", "SP3")] == 1
    assert sorted(carbons[:, column("num_hs", "3")].tolist()) == [0, 1]
    assert sorted(carbons[:, column("degree", "2")].tolist()) == [0, 1]
    zwitterion = FEATURIZER.featurize("[NH3+]CC([O-])=O").x
    nitrogen = zwitterion[zwitterion[:, column("element", "N")] == 1]
    assert nitrogen[0, column("formal_charge", "1")] == 1
    assert zwitterion[:, column("formal_charge", "-1")].sum() == 1
    assert FEATURIZER.featurize("[Se]").x[0, column("element", "other")] == 1


def test_dimensions_are_documented():
    assert FEATURIZER.node_dim == 50 and FEATURIZER.edge_dim == 14
    assert FEATURIZER.spec["node_dim"] == 50
