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
    """Obviously-correct per-atom version: every value read from its own RDKit getter."""
    mol = Chem.MolFromSmiles(smiles)
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
    for b in mol.GetBonds():
        row = (int(b.GetBondType()), b.GetIsConjugated(), b.IsInRing(), int(b.GetStereo()))
        edges += [
            (b.GetBeginAtomIdx(), b.GetEndAtomIdx()),
            (b.GetEndAtomIdx(), b.GetBeginAtomIdx()),
        ]
        edge_raw += [row, row]
    x = encode(NODE_FEATURES_2D, np.array(node_raw, dtype=float))
    edge_attr = encode(EDGE_FEATURES_2D, np.array(edge_raw, dtype=float).reshape(-1, 4))
    return x, np.array(edges, dtype=np.int64).reshape(-1, 2).T, edge_attr


@pytest.mark.parametrize("smiles", DIVERSE_SMILES)
def test_matches_per_atom_reference(smiles):
    data = FEATURIZER.featurize(smiles)
    x, edge_index, edge_attr = reference_graph(smiles)
    np.testing.assert_allclose(data.x.numpy(), x, rtol=1e-6)
    np.testing.assert_array_equal(data.edge_index.numpy(), edge_index)
    np.testing.assert_array_equal(data.edge_attr.numpy(), edge_attr)
    assert data.x.dtype == torch.float32 and data.edge_index.dtype == torch.long


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
    ethanol = FEATURIZER.featurize("CCO").x
    assert ethanol[2, column("element", "O")] == 1
    assert ethanol[0, column("num_hs", "3")] == 1
    assert ethanol[1, column("degree", "2")] == 1
    assert ethanol[2, column("hybridization", "SP3")] == 1
    zwitterion = FEATURIZER.featurize("[NH3+]CC([O-])=O").x
    assert zwitterion[0, column("formal_charge", "1")] == 1
    assert zwitterion[3, column("formal_charge", "-1")] == 1
    assert FEATURIZER.featurize("[Se]").x[0, column("element", "other")] == 1


def test_dimensions_are_documented():
    assert FEATURIZER.node_dim == 50 and FEATURIZER.edge_dim == 14
    assert FEATURIZER.spec["node_dim"] == 50
