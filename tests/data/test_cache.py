"""The featurization cache: hits, and misses when the featurizer or the source changes."""

import numpy as np
import pandas as pd
import pytest
import torch

from molmtl.data import cache, load_csv, load_qm9
from molmtl.featurizers.graph2d import Graph2DFeaturizer


class Graph2DNextVersion(Graph2DFeaturizer):
    version = Graph2DFeaturizer.version + 1


def forbid_featurizing(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("featurized although the cache should have been used")

    monkeypatch.setattr(Graph2DFeaturizer, "featurize_many", fail)


def test_second_load_reads_the_cache(qm9_small_dir, tmp_path, monkeypatch):
    first = load_qm9(qm9_small_dir, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    forbid_featurizing(monkeypatch)
    second = load_qm9(qm9_small_dir, cache_dir=tmp_path)
    assert torch.equal(first.graphs.x, second.graphs.x) and torch.equal(first.y, second.y)


def test_cached_facts_equal_fresh_ones(qm9_small_dir, tmp_path):
    fresh = load_qm9(qm9_small_dir, use_cache=False)
    load_qm9(qm9_small_dir, cache_dir=tmp_path)
    cached = load_qm9(qm9_small_dir, cache_dir=tmp_path)
    for name, values in fresh.facts.arrays().items():
        np.testing.assert_array_equal(values, getattr(cached.facts, name), err_msg=name)
        assert values.dtype == getattr(cached.facts, name).dtype


def test_format_version_is_part_of_the_key(monkeypatch):
    key = cache.cache_key({"name": "2d"}, "source")
    monkeypatch.setattr(cache, "CACHE_FORMAT_VERSION", cache.CACHE_FORMAT_VERSION - 1)
    assert cache.cache_key({"name": "2d"}, "source") != key


def test_entry_of_the_old_layout_is_rebuilt(qm9_small_dir, tmp_path):
    # layout 1 stored QM9 domain flags instead of the chemistry facts
    load_qm9(qm9_small_dir, cache_dir=tmp_path)
    entry = next(tmp_path.glob("*.pt"))
    state = torch.load(entry, weights_only=True)
    old = {k: v for k, v in state.items() if not k.startswith("facts.")}
    torch.save({**old, "in_domain": state["valid"]}, entry)
    with pytest.warns(cache.CacheWarning, match="damaged"):
        dataset = load_qm9(qm9_small_dir, cache_dir=tmp_path)
    assert len(dataset.facts) == len(dataset) == 200
    assert any(k.startswith("facts.") for k in torch.load(entry, weights_only=True))


def test_cache_file_is_tensor_only(qm9_small_dir, tmp_path):
    load_qm9(qm9_small_dir, cache_dir=tmp_path)
    state = torch.load(next(tmp_path.glob("*.pt")), weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())


def test_changed_featurizer_spec_misses_the_cache(qm9_small_dir, tmp_path):
    load_qm9(qm9_small_dir, cache_dir=tmp_path)
    dataset = load_qm9(qm9_small_dir, cache_dir=tmp_path, featurizer=Graph2DNextVersion())
    assert dataset.featurizer_spec["version"] == Graph2DNextVersion.version
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_changed_featurizer_code_misses_the_cache(qm9_small_dir, tmp_path, monkeypatch):
    # An implementation change that leaves the spec alone (seen: a rounding change in the mass
    # feature) must not reuse graphs built by the old code.
    load_qm9(qm9_small_dir, cache_dir=tmp_path)
    monkeypatch.setattr(cache, "featurizer_code_fingerprint", lambda: "edited featurizer code")
    load_qm9(qm9_small_dir, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_changed_source_file_misses_the_cache(tmp_path, monkeypatch):
    path = tmp_path / "table.csv"
    pd.DataFrame({"smiles": ["CCO", "CC"], "y": [1, 2]}).to_csv(path, index=False)
    load_csv(path, cache_dir=tmp_path / "cache", use_cache=True)
    pd.DataFrame({"smiles": ["CCO", "CCC"], "y": [1, 2]}).to_csv(path, index=False)
    assert load_csv(path, cache_dir=tmp_path / "cache", use_cache=True).smiles[1] == "CCC"
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2


def test_corrupt_entry_is_rebuilt(qm9_small_dir, tmp_path):
    load_qm9(qm9_small_dir, cache_dir=tmp_path)
    next(tmp_path.glob("*.pt")).write_bytes(b"not a tensor file")
    with pytest.warns(cache.CacheWarning, match="damaged"):
        assert len(load_qm9(qm9_small_dir, cache_dir=tmp_path)) == 200


@pytest.mark.slow
def test_full_qm9_second_load_takes_seconds(tmp_path):
    import time

    from tests.data.conftest import SHARED_QM9

    load_qm9(SHARED_QM9, cache_dir=tmp_path)
    start = time.perf_counter()
    dataset = load_qm9(SHARED_QM9, cache_dir=tmp_path)
    assert len(dataset) == 130_831 and time.perf_counter() - start < 10


def _damage_json(key_path, text):
    key_path.with_suffix(".json").write_text(text)


@pytest.mark.parametrize(
    "damage",
    [
        lambda pt: pt.write_bytes(b"not a tensor file"),
        lambda pt: pt.write_bytes(pt.read_bytes()[:1000]),
        lambda pt: _damage_json(pt, "[1, 2]"),
        lambda pt: _damage_json(pt, '{"errors": [], "notes": []}'),
        lambda pt: _damage_json(pt, "{"),
        lambda pt: torch.save({"valid": torch.ones(3, dtype=torch.bool)}, pt),
        lambda pt: torch.save([1, 2, 3], pt),
    ],
    ids=["garbage", "truncated", "json-list", "json-too-short", "bad-json", "foreign", "no-dict"],
)
def test_a_damaged_entry_is_rebuilt_with_a_warning(tmp_path, damage):
    path = tmp_path / "table.csv"
    pd.DataFrame({"smiles": ["CCO", "CC", "xx", "c1ccccc1"], "y": [1, 2, 3, 4]}).to_csv(path)
    fresh = load_csv(path)
    load_csv(path, cache_dir=tmp_path / "cache", use_cache=True)
    damage(next((tmp_path / "cache").glob("*.pt")))
    with pytest.warns(cache.CacheWarning, match="is damaged .*featurizing again"):
        rebuilt = load_csv(path, cache_dir=tmp_path / "cache", use_cache=True)
    assert rebuilt.smiles == fresh.smiles and torch.equal(rebuilt.graphs.x, fresh.graphs.x)
    again = load_csv(path, cache_dir=tmp_path / "cache", use_cache=True)  # the rewritten entry
    assert torch.equal(again.graphs.edge_index, fresh.graphs.edge_index)


def test_edge_indices_out_of_range_are_damage(tmp_path):
    frame = pd.DataFrame({"smiles": ["CCO", "CC"], "y": [1, 2]})
    load_csv(frame, cache_dir=tmp_path, use_cache=True)
    entry = next(tmp_path.glob("*.pt"))
    state = torch.load(entry, weights_only=True)
    state["graphs.edge_index"][0, 0] = 99
    torch.save(state, entry)
    with pytest.warns(cache.CacheWarning, match="edge indices are out of range"):
        assert int(load_csv(frame, cache_dir=tmp_path, use_cache=True).graphs.edge_index.max()) < 3


def test_an_unwritable_cache_is_skipped_with_a_warning(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    frame = pd.DataFrame({"smiles": ["CCO", "CC"], "y": [1, 2]})
    with pytest.warns(cache.CacheWarning, match="cannot write the featurization cache"):
        assert len(load_csv(frame, cache_dir=blocker, use_cache=True)) == 2


def test_a_failed_save_leaves_no_partial_file(tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.Path, "replace", full_disk)
    with pytest.warns(cache.CacheWarning, match="No space left"):
        load_csv(pd.DataFrame({"smiles": ["C"], "y": [1]}), cache_dir=tmp_path, use_cache=True)
    assert list(tmp_path.iterdir()) == []
