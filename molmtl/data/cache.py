"""Disk cache of featurized molecules, keyed by featurizer spec and source checksum.

A cache entry is two files: ``<key>.pt`` (tensors only: packed graphs and per-molecule flags,
loadable with ``torch.load(weights_only=True)``) and ``<key>.json`` (the spec and the
per-molecule error texts, for people and for checking). The key hashes the featurizer spec,
the featurizer code and RDKit's version, so changing any feature, its implementation (even a
rounding detail that leaves the spec alone) or RDKit misses the cache instead of reusing stale
graphs.
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

from molmtl.data.packed import PackedGraphs
from molmtl.featurizers import FeaturizedBatch

CACHE_FORMAT_VERSION = 1


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
    from rdkit import __version__ as rdkit_version

    import molmtl.featurizers

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
            graphs = PackedGraphs.from_state_dict(
                {k[len("graphs.") :]: v for k, v in state.items() if k.startswith("graphs.")}
            )
        except (OSError, ValueError, KeyError, RuntimeError, EOFError, pickle.UnpicklingError):
            return None  # unreadable or foreign entry: featurize again and overwrite it
        return FeaturizedBatch(
            graphs=graphs,
            valid=state["valid"].numpy(),
            errors=meta["errors"],
            in_domain=state["in_domain"].numpy(),
            domain_notes=meta["domain_notes"],
            notes=meta["notes"],
        )

    def save(self, key: str, batch: FeaturizedBatch, spec: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        state = {f"graphs.{k}": v.cpu() for k, v in batch.graphs.state_dict().items()}
        state["valid"] = torch.from_numpy(np.asarray(batch.valid, dtype=bool))
        state["in_domain"] = torch.from_numpy(np.asarray(batch.in_domain, dtype=bool))
        meta = {
            "spec": spec,
            "errors": batch.errors,
            "domain_notes": batch.domain_notes,
            "notes": batch.notes,
        }
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
