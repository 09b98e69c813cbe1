"""The 3D (QM9 benchmark) featurizer: reference values, permutation equivariance, errors."""

import numpy as np
import pytest
import torch
from rdkit import Chem

from molmtl import featurizers
from molmtl.featurizers import InvalidMoleculeError

FEATURIZER = featurizers.get("3d")
SMILES = ["C", "O", "CCO", "C#N", "c1ccoc1", "CC(=O)N", "[NH3+]CC([O-])=O", "FC(F)F"]
BOND_COLUMN = {"SINGLE": 0, "DOUBLE": 1, "TRIPLE": 2, "AROMATIC": 3}


def generated_mol(smiles: str) -> Chem.Mol:
    """The atoms as a generated conformer orders them: canonical SMILES order, then hydrogens."""
    return Chem.AddHs(Chem.MolFromSmiles(Chem.MolToSmiles(Chem.MolFromSmiles(smiles))))


def reference(mol: Chem.Mol, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyG QM9 node features + Complete + Distance(norm=False), written as plain loops."""
    x = []
    for atom in mol.GetAtoms():
        row = [0.0] * 5
        row["HCNOF".index(atom.GetSymbol())] = 1.0
        hybridization = str(atom.GetHybridization())
        hs = sum(n.GetAtomicNum() == 1 for n in atom.GetNeighbors())
        row += [atom.GetAtomicNum(), atom.GetIsAromatic()]
        row += [hybridization == "SP", hybridization == "SP2", hybridization == "SP3", hs]
        x.append(row)
    edges, attrs = [], []
    for i in range(mol.GetNumAtoms()):
        for j in range(mol.GetNumAtoms()):
            if i == j:
                continue
            attr = [0.0] * 4
            bond = mol.GetBondBetweenAtoms(i, j)
            if bond is not None:
                attr[BOND_COLUMN[str(bond.GetBondType())]] = 1.0
            edges.append((i, j))
            attrs.append([*attr, float(np.linalg.norm(pos[j] - pos[i]))])
    return np.array(x, dtype=float), np.array(edges).T, np.array(attrs)


@pytest.mark.parametrize("smiles", SMILES)
def test_generated_conformer_matches_reference(smiles):
    data = FEATURIZER.featurize(smiles)
    mol = generated_mol(smiles)
    x, edge_index, edge_attr = reference(mol, data.pos.double().numpy())
    np.testing.assert_allclose(data.x.numpy(), x)
    np.testing.assert_array_equal(data.edge_index.numpy(), edge_index)
    np.testing.assert_allclose(data.edge_attr.numpy(), edge_attr, rtol=1e-5)
    n = mol.GetNumAtoms()
    assert (
        data.edge_index.shape[1] == n * (n - 1)
        and not (data.edge_index[0] == data.edge_index[1]).any()
    )


# not the zwitterion: its two carboxylate O are equivalent in a symmetric geometry, so which
# one carries C=O is arbitrary there
@pytest.mark.parametrize("smiles", [s for s in SMILES if "+" not in s])
@pytest.mark.parametrize("seed", [0, 1])
def test_permuting_coordinate_rows_permutes_the_graph(smiles, seed):
    generated = FEATURIZER.featurize(smiles)
    elements = [a.GetSymbol() for a in generated_mol(smiles).GetAtoms()]
    permutation = np.random.default_rng(seed).permutation(len(elements))
    coords = generated.pos.double().numpy()[permutation]
    permuted = FEATURIZER.featurize(
        smiles, coords=coords, elements=[elements[k] for k in permutation]
    )
    torch.testing.assert_close(permuted.x, generated.x[torch.from_numpy(permutation)])
    torch.testing.assert_close(permuted.pos, generated.pos[torch.from_numpy(permutation)])

    def dense(data: torch.Tensor) -> torch.Tensor:
        n = data.num_nodes
        out = torch.zeros(n, n, data.edge_attr.shape[1])
        out[data.edge_index[0], data.edge_index[1]] = data.edge_attr
        return out

    index = torch.from_numpy(permutation)
    torch.testing.assert_close(
        dense(permuted), dense(generated)[index][:, index], atol=1e-5, rtol=1e-5
    )


def test_methane_values():
    x = FEATURIZER.featurize("C").x
    assert x[0].tolist() == [0, 1, 0, 0, 0, 6, 0, 0, 0, 1, 4]
    assert x[1].tolist() == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]


@pytest.mark.parametrize("smiles", ["OCC", "C(O)(=O)CN", "C1=COC=C1"])
def test_generated_conformer_does_not_depend_on_the_writing(smiles):
    canonical = Chem.MolToSmiles(Chem.MolFromSmiles(smiles))
    written, rewritten = FEATURIZER.featurize(smiles), FEATURIZER.featurize(canonical)
    assert torch.equal(written.x, rewritten.x) and torch.equal(written.pos, rewritten.pos)


def test_conformer_is_seeded_and_noted():
    first = FEATURIZER.featurize_many(["CCO"])
    assert "ETKDG" in first.notes[0] and "seed 0" in first.notes[0]
    assert torch.equal(first.graphs.pos, FEATURIZER.featurize("CCO").pos)


@pytest.mark.parametrize(
    ("smiles", "kwargs", "reason"),
    [
        ("CCl", {}, "Cl unsupported by the 3D featurizer"),
        ("CO", {"coords": np.zeros((6, 3))}, "one element symbol per atom"),
        (
            "CO",
            {"coords": np.zeros((6, 3)), "elements": ["C", "O", "H", "H", "H", "N"]},
            "differ from",
        ),
        (
            "CO",
            {
                "coords": np.arange(18.0).reshape(6, 3) * 5,
                "elements": ["C", "O", "H", "H", "H", "H"],
            },
            "not found",
        ),
    ],
)
def test_invalid_inputs(smiles, kwargs, reason):
    with pytest.raises(InvalidMoleculeError, match=reason):
        FEATURIZER.featurize(smiles, **kwargs)


def test_no_conformer_generation_option():
    featurizer = featurizers.get("3d", generate_conformers=False)
    assert featurizer.spec["options"] == {"generate_conformers": False, "seed": 0}
    with pytest.raises(InvalidMoleculeError, match="conformer generation is off"):
        featurizer.featurize("CCO")


def test_dimensions():
    assert (FEATURIZER.node_dim, FEATURIZER.edge_dim) == (11, 5)
