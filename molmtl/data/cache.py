"""Disk cache of featurized molecules, keyed by featurizer spec and source checksum.

A cache entry is two files: ``<key>.pt`` (tensors only: packed graphs, validity flags and the
molecules' chemistry facts, loadable with ``torch.load(weights_only=True)``) and ``<key>.json``
(the spec and the per-molecule error texts and notes, for people and for checking). The key
hashes the entry layout's version, the featurizer spec, the featurizer code and RDKit's version,
so changing the layout, any feature, its implementation (even a rounding detail that leaves the
spec alone) or RDKit misses the cache instead of misreading or reusing stale graphs.

The cache never stops a load: an entry that cannot be read or does not fit its source is
featurized again and rewritten, and a cache folder that cannot be written is skipped; both with
a :class:`CacheWarning`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rdkit import __version__ as rdkit_version

import molmtl.featurizers
from molmtl.featurizers import FeaturizedBatch, MoleculeFacts
from molmtl.graphs import PackedGraphs

#: part of every key: bumped when an entry's layout changes, so old entries are rebuilt, not
#: misread (2: chemistry facts replace the QM9 domain flags)
CACHE_FORMAT_VERSION = 2


def file_checksum(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def text_checksum(texts: list[str]) -> str:
    """SHA-256 of a list of strings (for in-memory sources such as DataFrames)."""
    return hashlib.sha256("\n".join(map(str, texts)).encode()).hexdigest()


@functools.cache
def featurizer_code_fingerprint() -> str:
    """SHA-256 of the featurizer package's source files and RDKit's version."""
    digest = hashlib.sha256(rdkit_version.encode())
    for path in sorted(Path(molmtl.featurizers.__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(spec: dict[str, Any], *sources: str) -> str:
    """Key of a cache entry: hash of the featurizer spec and code, and the sources' checksums."""
    payload = json.dumps(
        {
            "format": CACHE_FORMAT_VERSION,
            "spec": spec,
            "code": featurizer_code_fingerprint(),
            "sources": sources,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def source_checkout_data_dir() -> Path | None:
    """``data/`` of the source checkout molmtl runs from, or None for an installed package."""
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").exists() and (checkout / "data").is_dir():
        return checkout / "data"
    return None


def default_cache_dir() -> Path:
    """``$MOLMTL_CACHE``, else ``data/cache`` of a source checkout, else ``~/.cache/molmtl``."""
    if os.environ.get("MOLMTL_CACHE"):
        return Path(os.environ["MOLMTL_CACHE"])
    checkout_data = source_checkout_data_dir()
    return checkout_data / "cache" if checkout_data else Path.home() / ".cache" / "molmtl"


class CacheWarning(UserWarning):
    """The featurization cache could not be read or written; molmtl went on without it."""


class CacheEntryError(ValueError):
    """A cache entry is unreadable, or does not describe the molecules it is keyed by."""


class FeaturizationCache:
    """Featurized batches stored under ``directory``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def load(self, key: str, n_molecules: int | None = None) -> FeaturizedBatch | None:
        """The entry ``key`` (of ``n_molecules`` source molecules, when given), None if absent.

        Raises:
            CacheEntryError: the entry exists but is unreadable or inconsistent.
        """
        tensors, record = self.directory / f"{key}.pt", self.directory / f"{key}.json"
        if not (tensors.is_file() and record.is_file()):
            return None
        try:
            state = torch.load(tensors, map_location="cpu", weights_only=True)
            meta = json.loads(record.read_text())
            batch = FeaturizedBatch(
                graphs=PackedGraphs.from_state_dict(_with_prefix(state, "graphs.")),
                valid=state["valid"].numpy().astype(bool),
                errors=list(meta["errors"]),
                facts=MoleculeFacts.from_arrays(
                    {name: v.numpy() for name, v in _with_prefix(state, "facts.").items()}
                ),
                notes=list(meta["notes"]),
            )
        except Exception as error:  # torch.load and JSON raise many kinds on damaged files
            raise CacheEntryError(f"{type(error).__name__}: {error}"[:200]) from error
        _check_entry(batch, n_molecules)
        return batch

    def save(self, key: str, batch: FeaturizedBatch, spec: dict[str, Any]) -> None:
        """Write the entry ``key`` (raises ``OSError`` when the folder cannot be written)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        state = {f"graphs.{k}": v.cpu() for k, v in batch.graphs.state_dict().items()}
        state["valid"] = torch.from_numpy(np.asarray(batch.valid, dtype=bool))
        state.update({f"facts.{k}": torch.from_numpy(v) for k, v in batch.facts.arrays().items()})
        meta = {"spec": spec, "errors": batch.errors, "notes": batch.notes}
        # write then rename, so an interrupted save never leaves a half entry behind
        for suffix, write in (
            (".pt", lambda path: torch.save(state, path)),
            (".json", lambda path: path.write_text(json.dumps(meta))),
        ):
            partial = self.directory / f"{key}{suffix}.partial"
            try:
                write(partial)
                partial.replace(self.directory / f"{key}{suffix}")
            finally:
                partial.unlink(missing_ok=True)

    def get_or_featurize(
        self,
        key: str,
        spec: dict[str, Any],
        featurize: Callable[[], FeaturizedBatch],
        n_molecules: int | None = None,
    ) -> FeaturizedBatch:
        """The entry ``key``, or ``featurize()`` stored under it; warns (:class:`CacheWarning`)
        and goes on when an entry is damaged or the folder cannot be written."""
        try:
            batch = self.load(key, n_molecules)
        except CacheEntryError as error:
            warnings.warn(
                f"featurization cache entry {self.directory / key}.pt is damaged ({error}); "
                "featurizing again",
                CacheWarning,
                stacklevel=2,
            )
            batch = None
        if batch is not None:
            return batch
        batch = featurize()
        try:
            self.save(key, batch, spec)
        except (OSError, ValueError) as error:  # read-only, full, a file in the way, bad path
            warnings.warn(
                f"cannot write the featurization cache in {self.directory} "
                f"({getattr(error, 'strerror', None) or error}); going on without caching",
                CacheWarning,
                stacklevel=2,
            )
        return batch


def _check_entry(batch: FeaturizedBatch, n_molecules: int | None) -> None:
    """Raise :class:`CacheEntryError` unless the parts of ``batch`` fit each other and the source."""
    n_valid = int(batch.valid.sum())
    graphs = batch.graphs
    sizes = {
        "validity flags": len(batch.valid),
        "error texts": len(batch.errors),
        "notes": len(batch.notes),
    }
    if n_molecules is not None and any(size != n_molecules for size in sizes.values()):
        raise CacheEntryError(f"it holds {sizes} for {n_molecules} source molecules")
    if len(set(sizes.values())) != 1 or len(graphs) != n_valid or len(batch.facts) != n_valid:
        raise CacheEntryError(
            f"{len(graphs)} graphs and facts of {len(batch.facts)} for {n_valid} valid molecules"
        )
    node_counts = graphs.node_ptr[1:] - graphs.node_ptr[:-1]
    edge_counts = graphs.edge_ptr[1:] - graphs.edge_ptr[:-1]
    owner = torch.repeat_interleave(torch.arange(len(graphs)), edge_counts.clamp(min=0))
    if (
        (node_counts < 0).any()
        or (edge_counts < 0).any()
        or (graphs.edge_index < 0).any()
        or (len(owner) and (graphs.edge_index >= node_counts[owner]).any())
    ):
        raise CacheEntryError("its graph pointers or edge indices are out of range")


def _with_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``state`` whose key starts with ``prefix``, the prefix removed."""
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
