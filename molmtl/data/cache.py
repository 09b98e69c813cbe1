"""Disk cache of featurized molecules, keyed by featurizer spec and source checksum.

A cache entry is two files: ``<key>.pt`` (tensors only: packed graphs, validity flags and the
molecules' chemistry facts, loadable with ``torch.load(weights_only=True)``) and ``<key>.json``
(the spec and the per-molecule error texts and notes, for people and for checking). The key
hashes the entry layout's version, the featurizer spec, the featurizer code and RDKit's version,
so changing the layout, any feature, its implementation (even a rounding detail that leaves the
spec alone) or RDKit misses the cache instead of misreading or reusing stale graphs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
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


class FeaturizationCache:
    """Featurized batches stored under ``directory``."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def load(self, key: str) -> FeaturizedBatch | None:
        tensors, record = self.directory / f"{key}.pt", self.directory / f"{key}.json"
        if not (tensors.exists() and record.exists()):
            return None
        try:
            state = torch.load(tensors, map_location="cpu", weights_only=True)
            meta = json.loads(record.read_text())
            return FeaturizedBatch(
                graphs=PackedGraphs.from_state_dict(_with_prefix(state, "graphs.")),
                valid=state["valid"].numpy(),
                errors=meta["errors"],
                facts=MoleculeFacts.from_arrays(
                    {name: v.numpy() for name, v in _with_prefix(state, "facts.").items()}
                ),
                notes=meta["notes"],
            )
        except (OSError, ValueError, KeyError, RuntimeError, EOFError, pickle.UnpicklingError):
            return None  # unreadable or foreign entry: featurize again and overwrite it

    def save(self, key: str, batch: FeaturizedBatch, spec: dict[str, Any]) -> None:
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
            write(partial)
            partial.replace(self.directory / f"{key}{suffix}")

    def get_or_featurize(
        self, key: str, spec: dict[str, Any], featurize: Callable[[], FeaturizedBatch]
    ) -> FeaturizedBatch:
        batch = self.load(key)
        if batch is None:
            batch = featurize()
            self.save(key, batch, spec)
        return batch


def _with_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``state`` whose key starts with ``prefix``, the prefix removed."""
    return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
