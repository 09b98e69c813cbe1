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

#: small training sets for the applicability-domain tests, each with its own chemistry
DOMAIN_SETS = {
    "qm9-like": ["C", "CCO", "c1ccccc1", "CC(=O)O", "[NH3+]CC([O-])=O", "N#CC(F)(F)F", "OC1COC1"],
    "halogenated": ["CCCl", "ClC(Cl)Cl", "c1ccccc1Br", "FC(F)(F)I", "CC(=O)Cl"],
    "charged-and-salts": ["[Na+].[Cl-]", "C[NH3+]", "CC(=O)[O-]", "[O-][N+](=O)c1ccccc1", "[Fe+3]"],
    "radicals-and-isotopes": ["[CH3]", "[CH2]C", "[2H]C", "[13CH4]", "[H][H]"],
    "large": ["CCCCCCCCCCCC", "CC(C)(C)C(C)(C)C(C)(C)C", "c1ccc2ccccc2c1", "C[Si](C)(C)C"],
    "diverse": DIVERSE_SMILES,
}
