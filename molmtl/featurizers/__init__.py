"""Molecules → graphs. See docs/data.md for every feature and docs/architecture.md for the contract.

>>> from molmtl import featurizers
>>> featurizer = featurizers.get("2d")
>>> result = featurizer.featurize_many(["CCO", "C1CC"])
>>> result.valid.tolist(), result.errors[1]
([True, False], "unparseable SMILES 'C1CC'")
>>> featurizers.ApplicabilityDomain().fit(result.facts).explain("CCCl")
'element Cl not seen in training'
"""

from molmtl.featurizers import graph2d as _graph2d  # noqa: F401  (registers "2d")
from molmtl.featurizers import graph3d as _graph3d  # noqa: F401  (registers "3d")
from molmtl.featurizers._base import (
    FeaturizedBatch,
    Featurizer,
    FeaturizerSpecError,
    InvalidMoleculeError,
    canonical_atom_order,
    parse_smiles,
)
from molmtl.featurizers._registry import (
    FEATURIZERS,
    available,
    feature_tables,
    from_spec,
    get,
    register,
)
from molmtl.featurizers.domain import QM9_DOMAIN, ApplicabilityDomain
from molmtl.featurizers.facts import MoleculeFacts
from molmtl.featurizers.features import Feature

__all__ = [
    "FEATURIZERS",
    "QM9_DOMAIN",
    "ApplicabilityDomain",
    "Feature",
    "FeaturizedBatch",
    "Featurizer",
    "FeaturizerSpecError",
    "InvalidMoleculeError",
    "MoleculeFacts",
    "available",
    "canonical_atom_order",
    "feature_tables",
    "from_spec",
    "get",
    "parse_smiles",
    "register",
]
