import json

import numpy as np
import pytest

from molmtl.data import Split, qm9_benchmark_split, random_split, scaffold_split
from molmtl.data.splits import murcko_scaffold

SPLITTERS = {
    "benchmark": lambda seed: qm9_benchmark_split(1000, seed),
    "random": lambda seed: random_split(1000, (0.7, 0.2, 0.1), seed),
}


def test_full_qm9_benchmark_sizes():
    split = qm9_benchmark_split(130_831, seed=0)
    assert split.sizes() == {"train": 110_831, "val": 10_000, "test": 10_000}


@pytest.mark.parametrize("name", SPLITTERS)
def test_reproducible_disjoint_and_covering(name):
    first, again, other = SPLITTERS[name](0), SPLITTERS[name](0), SPLITTERS[name](1)
    assert all(np.array_equal(getattr(first, p), getattr(again, p)) for p in Split.parts)
    assert not np.array_equal(first.test, other.test)
    joined = np.concatenate([first.train, first.val, first.test])
    assert sorted(joined.tolist()) == list(range(1000))


def test_random_split_fractions():
    assert random_split(1000, (0.7, 0.2, 0.1), 0).sizes() == {"train": 700, "val": 200, "test": 100}


@pytest.mark.parametrize("fractions", [(0.5, 0.5), (0.8, 0.3, -0.1), (0.5, 0.2, 0.2)])
def test_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        random_split(10, fractions, 0)


SMILES = [
    "c1ccccc1C", "c1ccccc1O", "c1ccccc1N", "C1CCCCC1", "C1CCCCC1O", "CCO", "CCC", "CCN",
    "C1CC1", "C1CC1C", "c1ccncc1", "c1ccncc1C", "C1COC1", "OC1COC1", "CC(C)O", "bad(",
] * 5  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scaffold_groups_stay_together(seed):
    split = scaffold_split(SMILES, (0.6, 0.2, 0.2), seed)
    part_of = {}
    for part in Split.parts:
        for i in getattr(split, part):
            scaffold = murcko_scaffold(SMILES[i])
            assert part_of.setdefault(scaffold, part) == part
    assert sum(split.sizes().values()) == len(SMILES)
    assert scaffold_split(SMILES, (0.6, 0.2, 0.2), seed).to_dict() == split.to_dict()


def test_json_round_trip():
    split = qm9_benchmark_split(500, seed=3)
    restored = Split.from_dict(json.loads(json.dumps(split.to_dict())))
    assert (
        restored.to_dict() == split.to_dict()
        and restored.method == "benchmark"
        and restored.seed == 3
    )


def test_overlap_and_missing_keys_are_rejected():
    with pytest.raises(ValueError, match="disjoint"):
        Split(train=[0, 1], val=[1], test=[2])
    with pytest.raises(ValueError, match=r"lacks \['test'\]"):
        Split.from_dict({"train": [0], "val": [1]})


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ([[0], [1], [2]], "JSON object"),
        ({"train": [0, 1.0], "val": [2], "test": [3]}, "'train' must be a list of integer"),
        ({"train": [[0, 1]], "val": [2], "test": [3]}, "'train' must be a list of integer"),
        ({"train": [True], "val": [2], "test": [3]}, "'train' must be a list of integer"),
        ({"train": {"0": 1}, "val": [2], "test": [3]}, "'train' must be a list of integer"),
        ({"train": [0], "val": [2], "test": [10]}, "'test' has indices outside the 10 molecules"),
        ({"train": [-2], "val": [2], "test": [3]}, "'train' has indices outside"),
        ({"train": [0], "val": [2], "test": [3], "seed": "x"}, "'seed' an integer"),
    ],
)
def test_a_tampered_record_is_refused(record, message):
    with pytest.raises(ValueError, match=message):
        Split.from_dict(record, n_molecules=10)
