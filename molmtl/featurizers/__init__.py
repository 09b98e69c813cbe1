"""Molecules → graphs. See docs/data.md for every feature and docs/architecture.md for the contract.

>>> from molmtl import featurizers
>>> featurizer = featurizers.get("2d")
>>> result = featurizer.featurize_many(["CCO", "C1CC"])
>>> result.valid.tolist(), result.errors[1]
([True, False], "unparseable SMILES 'C1CC'")
"""

from molmtl.featurizers import graph2d as _graph2d  # noqa: F401  (registers "2d")
from molmtl.featurizers import graph3d as _graph3d  # noqa: F401  (registers "3d")
from molmtl.featurizers._base import (
    QM9_ELEMENTS,
    QM9_MAX_HEAVY_ATOMS,
    FeaturizedBatch,
    Featurizer,
    FeaturizerSpecError,
    InvalidMoleculeError,
    domain_problems,
    parse_smiles,
)
from molmtl.featurizers._registry import available, feature_tables, from_spec, get, register
from molmtl.featurizers.features import Feature

__all__ = [
    "QM9_ELEMENTS",
    "QM9_MAX_HEAVY_ATOMS",
    "Feature",
    "FeaturizedBatch",
    "Featurizer",
    "FeaturizerSpecError",
    "InvalidMoleculeError",
    "available",
    "domain_problems",
    "feature_tables",
    "from_spec",
    "get",
    "parse_smiles",
    "register",
]
