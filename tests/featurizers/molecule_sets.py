"""Shared molecule sets for the featurizer tests."""

#: valid molecules covering every feature value the 2D featurizer distinguishes
DIVERSE_SMILES = [
    "C",
    "CCO",
    "c1ccccc1O",
    "C/C=C/C",
    "F/C=C\\F",
    "C[C@H](N)C(=O)O",
    "C[C@@H](O)CC",
    "[NH3+]CC([O-])=O",
    "[CH3]",
    "[CH2]C",
    "[O-][N+](=O)c1ccccc1",
    "C1CC2CCC1C2",
    "ClC(Br)I",
    "[Na+].[Cl-]",
    "OB(O)c1ccccc1",
    "C[Si](C)(C)C",
    "P(=O)(O)(O)O",
    "CS(=O)(=O)N",
    "F[S](F)(F)(F)(F)F",
    "[2H]C",
    "[H][H]",
    "C#N",
    "c1ccncc1",
    "c1cc[nH]c1",
    "C=C=C",
    "[Se]",
    "[Fe+3]",
    "CC(C)(C)C(C)(C)C(C)(C)C",
]

#: invalid inputs and a fragment of the reason each must report
INVALID_SMILES = {
    "": "empty",
    "   ": "whitespace",
    "C1CC": "unparseable",
    "CC O": "whitespace inside",
    "C(C)(C)(C)(C)C": "valence",
    "c1cccc1": "invalid chemistry",
    "*C": "dummy atom",
    "Xx": "unparseable",
}
