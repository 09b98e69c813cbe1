"""Per-molecule errors, chemistry facts, row alignment, registry and spec checks."""

import json

import numpy as np
import pytest

from molmtl import featurizers
from molmtl.featurizers import FeaturizerSpecError, InvalidMoleculeError
from tests.featurizers.molecule_sets import DIVERSE_SMILES, INVALID_SMILES

FEATURIZER = featurizers.get("2d")


@pytest.mark.parametrize(("smiles", "reason"), INVALID_SMILES.items())
def test_invalid_molecule_reports_reason(smiles, reason):
    with pytest.raises(InvalidMoleculeError, match=reason):
        FEATURIZER.featurize(smiles)
    result = FEATURIZER.featurize_many([smiles])
    assert not result.valid[0] and reason in result.errors[0] and len(result.graphs) == 0


@pytest.mark.parametrize("bad", [None, float("nan"), 42])
def test_non_string_is_reported(bad):
    result = FEATURIZER.featurize_many(["CC", bad, "O"])
    assert result.valid.tolist() == [True, False, True]
    assert "must be a string" in result.errors[1]


@pytest.mark.parametrize("position", [0, 3, 7])
def test_rows_stay_aligned_with_invalid_molecules_in_the_middle(position):
    smiles = list(DIVERSE_SMILES[:7])
    smiles.insert(position, "C1CC")
    result = FEATURIZER.featurize_many(smiles)
    assert result.valid.sum() == 7 and result.errors[position]
    assert result.graph_of[position] == -1
    for i, text in enumerate(smiles):
        if i != position:
            expected = FEATURIZER.featurize(text)
            got = result.graphs.get(int(result.graph_of[i]))
            assert got.x.equal(expected.x) and got.edge_index.equal(expected.edge_index)


def test_facts_are_aligned_with_the_graphs():
    smiles = ["CCCl", "C1CC", "[NH4+]", "", "CCO"]
    result = FEATURIZER.featurize_many(smiles)
    assert len(result.facts) == len(result.graphs) == 3
    assert result.facts.heavy_atoms.tolist() == [3, 1, 3]
    assert result.facts.net_charge.tolist() == [0, 1, 0]


def test_the_featurizer_judges_no_domain():
    result = FEATURIZER.featurize_many(["CCCl", "[Na+].[Cl-]"])
    assert not hasattr(result, "in_domain") and not hasattr(result, "domain_notes")


def test_parallel_equals_serial():
    smiles = DIVERSE_SMILES + list(INVALID_SMILES)
    serial = FEATURIZER.featurize_many(smiles, n_jobs=1)
    parallel = FEATURIZER.featurize_many(smiles, n_jobs=2)
    assert serial.errors == parallel.errors
    for name, values in serial.facts.arrays().items():
        np.testing.assert_array_equal(values, getattr(parallel.facts, name), err_msg=name)
    assert serial.graphs.x.equal(parallel.graphs.x)
    assert serial.graphs.edge_ptr.equal(parallel.graphs.edge_ptr)


@pytest.mark.parametrize("n_jobs", [0, -2])
def test_bad_n_jobs(n_jobs):
    with pytest.raises(ValueError, match="n_jobs"):
        FEATURIZER.featurize_many(["C"], n_jobs=n_jobs)


def test_registry():
    assert featurizers.available() == sorted(featurizers.FEATURIZERS.names()) == ["2d", "3d"]
    with pytest.raises(ValueError, match=r"unknown featurizer '4d'; available: .*2d"):
        featurizers.get("4d")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("2d", {"seed": 1}, r"unknown option\(s\) \['seed'\] for featurizer '2d'"),
        ("3d", {"sed": 1}, r"\['sed'\].*valid options: \['generate_conformers', 'seed'\]"),
    ],
)
def test_unknown_options_are_named(name, options, message):
    with pytest.raises(ValueError, match=message):
        featurizers.get(name, **options)


def test_options_reach_the_featurizer():
    assert featurizers.get("3d", seed=7, generate_conformers=False).options() == {
        "generate_conformers": False,
        "seed": 7,
    }


def test_a_name_registers_once():
    with pytest.raises(ValueError, match="featurizer '2d' is registered twice"):
        featurizers.register("2d")(type(FEATURIZER))


def test_spec_round_trips_through_json():
    spec = json.loads(json.dumps(FEATURIZER.spec))
    assert featurizers.from_spec(spec).spec == FEATURIZER.spec


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda s: s.update(version=0), "spec.version"),
        (lambda s: s["node_features"][2].update(dim=9), "spec.node_features[2].dim"),
        (lambda s: s["edge_features"].pop(), "spec.edge_features (length"),
        (lambda s: s.update(name="nope"), "unknown featurizer 'nope'"),
    ],
)
def test_spec_mismatch_names_the_field(change, field):
    spec = json.loads(json.dumps(FEATURIZER.spec))
    change(spec)
    with pytest.raises(FeaturizerSpecError, match=field.replace("[", r"\[").replace("(", r"\(")):
        featurizers.from_spec(spec)


WORKER_CASES = [
    (100, None, 8, 1),
    (19_999, None, 8, 1),
    (20_000, None, 8, 2),
    (130_831, None, 8, 8),
    (130_831, None, 2, 2),
    (10, 3, 8, 3),
    (10, -1, 4, 4),
]


@pytest.mark.parametrize(("n", "n_jobs", "cpus", "expected"), WORKER_CASES)
def test_worker_count(n, n_jobs, cpus, expected, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
    assert FEATURIZER._workers(n, n_jobs) == expected


def test_series_with_other_index_is_read_positionally():
    import pandas as pd

    series = pd.Series(["CCO", "C1CC", "O"], index=[10, 20, 30])
    assert FEATURIZER.featurize_many(series).valid.tolist() == [True, False, True]
