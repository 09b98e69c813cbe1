"""A few real molecules through the real 2D featurizer, for model tests."""

from __future__ import annotations

import pytest

from molmtl import featurizers

SMILES = ["C", "CCO", "c1ccccc1", "CC(=O)N", "OCC(F)(F)F", "C#N", "CC1CC1O", "NC(=O)c1ccncc1"]


@pytest.fixture(scope="session")
def featurizer():
    return featurizers.get("2d")


@pytest.fixture(scope="session")
def graphs(featurizer):
    return featurizer.featurize_many(SMILES).graphs
