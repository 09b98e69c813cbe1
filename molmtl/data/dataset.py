"""MoleculeDataset (graphs + labels aligned with their source rows), the generic CSV loader, and
:func:`fit_domain`: the applicability domain of a model, learned from its training molecules."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from molmtl import featurizers
from molmtl.data.cache import (
    FeaturizationCache,
    cache_key,
    default_cache_dir,
    file_checksum,
    text_checksum,
)
from molmtl.data.targets import TargetInfo
from molmtl.featurizers import (
    QM9_DOMAIN,
    ApplicabilityDomain,
    FeaturizedBatch,
    Featurizer,
    MoleculeFacts,
)
from molmtl.graphs import PackedGraphs


@dataclass
class MoleculeDataset:
    """Featurized molecules with their labels.

    Attributes:
        graphs: G valid molecules.
        y: ``[G, T]`` float32 labels in the targets' units; NaN = missing label.
        smiles: G SMILES strings.
        targets: T target descriptions (name, unit, ...).
        featurizer_spec: spec of the featurizer that made ``graphs``.
        source_rows: ``[G]`` int64 row of each molecule in the source file (0-based, data rows).
        facts: chemistry facts of the G molecules (elements, heavy atoms, charges, ...), from
            which :func:`fit_domain` learns a model's applicability domain.
        rejected: source rows that were not featurized: DataFrame ``row, smiles, error``.
        ids: ``[G]`` molecule identifiers from the source (e.g. QM9's ``gdb_N``), or None.
    """

    graphs: PackedGraphs
    y: torch.Tensor
    smiles: list[str]
    targets: list[TargetInfo]
    featurizer_spec: dict[str, Any]
    source_rows: np.ndarray
    facts: MoleculeFacts
    rejected: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["row", "smiles", "error"])
    )
    ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.smiles)

    def __repr__(self) -> str:
        names = ", ".join(t.name for t in self.targets)
        return f"MoleculeDataset({len(self)} molecules, targets [{names}], {len(self.rejected)} rejected rows)"

    @property
    def mask(self) -> torch.Tensor:
        """``[G, T]`` bool, True where a label exists."""
        return ~torch.isnan(self.y)

    @property
    def target_names(self) -> list[str]:
        return [t.name for t in self.targets]

    def fingerprint(self) -> str:
        """SHA-256 of the target names, the SMILES and the labels, in order: the same for the
        same data wherever its file lies (or however it is compressed), different when a
        molecule, a label or the order changes (``splits.json`` indexes this order)."""
        digest = hashlib.sha256(json.dumps(self.target_names).encode())
        digest.update("\n".join(self.smiles).encode("utf-8", "surrogatepass"))
        labels = np.asarray(self.y, dtype=np.float32)
        digest.update(np.where(np.isnan(labels), np.float32("nan"), labels).tobytes())
        return digest.hexdigest()

    @property
    def in_domain(self) -> np.ndarray:
        """``[G]`` bool: inside QM9's chemistry (:data:`~molmtl.featurizers.QM9_DOMAIN`).

        A reference flag only, e.g. to see which molecules a QM9 model would extrapolate on; the
        domain of a trained model is learned from its own training set (:func:`fit_domain`).
        """
        return QM9_DOMAIN.contains(self.facts)

    def subset(self, index: Sequence[int] | np.ndarray | torch.Tensor) -> MoleculeDataset:
        """The molecules ``index`` (in that order); ``rejected`` is kept as is."""
        index = np.asarray(torch.as_tensor(index, dtype=torch.long).cpu())
        return MoleculeDataset(
            graphs=self.graphs.select(torch.from_numpy(index)),
            y=self.y[torch.from_numpy(index)],
            smiles=[self.smiles[i] for i in index],
            targets=list(self.targets),
            featurizer_spec=self.featurizer_spec,
            source_rows=self.source_rows[index],
            facts=self.facts.select(index),
            rejected=self.rejected,
            ids=None if self.ids is None else self.ids[index],
        )


def resolve_featurizer(featurizer: str | dict | Featurizer) -> Featurizer:
    """A featurizer from its name, its stored spec, or itself."""
    if isinstance(featurizer, Featurizer):
        return featurizer
    if isinstance(featurizer, dict):
        return featurizers.from_spec(featurizer)
    if isinstance(featurizer, str):
        return featurizers.get(featurizer)
    raise TypeError(
        f"featurizer must be a name ({featurizers.available()}), a spec dict or a Featurizer, got {featurizer!r}"
    )


def featurize_with_cache(
    featurizer: Featurizer,
    featurize: Callable[[], FeaturizedBatch],
    *,
    source_checksums: Sequence[str],
    cache_dir: str | Path | None,
    use_cache: bool = True,
    n_molecules: int | None = None,
) -> FeaturizedBatch:
    """``featurize()``, or the disk cache entry keyed by ``featurizer.spec`` and the sources
    (rebuilt when damaged or not of ``n_molecules`` molecules; see :class:`FeaturizationCache`)."""
    if not use_cache:
        return featurize()
    cache = FeaturizationCache(default_cache_dir() if cache_dir is None else cache_dir)
    spec = featurizer.spec
    key = cache_key(spec, *source_checksums)
    return cache.get_or_featurize(key, spec, featurize, n_molecules)


def assemble(
    batch: FeaturizedBatch,
    smiles: list[str],
    raw_targets: np.ndarray,
    targets: list[TargetInfo],
    featurizer_spec: dict[str, Any],
    ids: np.ndarray | None = None,
) -> MoleculeDataset:
    """Keep the valid molecules of ``batch`` with their labels converted to the targets' units.

    Args:
        raw_targets: ``[n, T]`` source values (NaN = missing), rows aligned with ``smiles``.
        ids: ``[n]`` source identifiers, or None.
    """
    valid = np.asarray(batch.valid, dtype=bool)
    factors = np.array([t.factor for t in targets], dtype=np.float64)
    rows = np.flatnonzero(valid)
    with np.errstate(over="ignore"):
        y = (raw_targets[valid].astype(np.float64) * factors).astype(np.float32)
    _check_finite(y, rows, targets)
    bad = np.flatnonzero(~valid)
    rejected = pd.DataFrame(
        {"row": bad, "smiles": [smiles[i] for i in bad], "error": [batch.errors[i] for i in bad]},
    )
    return MoleculeDataset(
        graphs=batch.graphs,
        y=torch.from_numpy(y),
        smiles=[smiles[i] for i in rows],
        targets=targets,
        featurizer_spec=featurizer_spec,
        source_rows=rows.astype(np.int64),
        facts=batch.facts,
        rejected=rejected,
        ids=None if ids is None else np.asarray(ids)[rows],
    )


def _check_finite(y: np.ndarray, rows: np.ndarray, targets: list[TargetInfo]) -> None:
    """Refuse ±inf labels (NaN is a missing label): ``y [G, T]`` float32, ``rows [G]`` source rows."""
    infinite = np.isinf(y)
    if not infinite.any():
        return
    column = int(np.flatnonzero(infinite.any(0))[0])
    bad = rows[infinite[:, column]]
    shown = ", ".join(map(str, bad[:10])) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
    raise ValueError(
        f"target column {targets[column].column!r} has infinite values (±inf, or beyond float32's "
        f"±3.4e38) in data row(s) {shown} (0-based, header not counted); use finite numbers, or "
        "leave the cell empty for a missing label"
    )


def read_table(path: Path) -> pd.DataFrame:
    """``pd.read_csv(path)`` (plain or compressed), with errors that name the file.

    Raises:
        ValueError: the file is empty, not UTF-8 text, not CSV, or a broken archive.
    """
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"CSV file {str(path)!r} is empty: it needs a header line and rows"
        ) from None
    except UnicodeDecodeError as error:
        raise ValueError(
            f"CSV file {str(path)!r} is not UTF-8 text (it holds the byte "
            f"{error.object[error.start]:#04x}); save it as UTF-8"
        ) from None
    except (pd.errors.ParserError, ValueError, OSError, EOFError) as error:
        reason = " ".join(str(error).split())[:300]
        raise ValueError(f"cannot read CSV file {str(path)!r}: {reason}") from None


#: cell texts that mean a missing label (pandas' own NA strings, lower-cased, and '')
_MISSING_TEXTS = ("", "nan", "-nan", "na", "n/a", "null", "none", "<na>", "#n/a")


def _numeric_targets(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """``[n, T]`` float64 from ``columns``; empty cells become NaN, text cells are an error."""
    out = np.empty((len(frame), len(columns)))
    for j, column in enumerate(columns):
        values = frame[column]
        numeric = pd.to_numeric(values, errors="coerce")
        text = values.astype("string").str.strip()
        # pandas keeps "nan" as text in a column it reads as text (e.g. beside a huge integer)
        bad = numeric.isna() & values.notna() & ~text.str.lower().isin(_MISSING_TEXTS)
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(
                f"target column {column!r} has non-numeric value {values.iloc[row]!r} in data row {row} "
                f"({int(bad.sum())} such cells); use numbers, or leave the cell empty for a missing label"
            )
        out[:, j] = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def load_csv(
    path_or_frame: str | Path | pd.DataFrame,
    *,
    smiles_column: str = "smiles",
    target_columns: Sequence[str] | None = None,
    featurizer: str | dict | Featurizer = "2d",
    cache_dir: str | Path | None = None,
    use_cache: bool = False,
    n_jobs: int | None = None,
) -> MoleculeDataset:
    """Dataset from any CSV file (plain or compressed) or DataFrame with a SMILES column.

    Empty target cells are missing labels (NaN, masked in the loss), never zeros. Rows whose
    SMILES cannot be featurized are left out and listed in ``dataset.rejected`` with their row
    number; ``dataset.source_rows`` maps each kept molecule to its data row.

    Args:
        target_columns: the label columns; None takes every column but ``smiles_column``.
        use_cache: reuse featurized graphs from ``cache_dir`` (keyed by file checksum and
            featurizer spec).
    """
    if isinstance(path_or_frame, pd.DataFrame):
        frame, checksum = path_or_frame, None
    else:
        path = Path(path_or_frame)
        if not path.is_file():
            raise FileNotFoundError(f"CSV file {str(path)!r} not found")
        frame = read_table(path)
        checksum = file_checksum(path) if use_cache else None
    if smiles_column not in frame.columns:
        raise ValueError(
            f"SMILES column {smiles_column!r} not in the table; columns are {list(frame.columns)}"
        )
    if target_columns is None:
        target_columns = [c for c in frame.columns if c != smiles_column]
    if isinstance(target_columns, str):
        raise TypeError(
            f"target_columns must be a list of column names, got the string {target_columns!r}"
        )
    missing = [c for c in target_columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"target column(s) {missing} not in the table; columns are {list(frame.columns)}"
        )
    if not target_columns:
        raise ValueError("no target columns: pass target_columns with at least one label column")
    smiles = frame[smiles_column].tolist()
    raw_targets = _numeric_targets(frame, target_columns)
    chosen = resolve_featurizer(featurizer)
    batch = featurize_with_cache(
        chosen,
        lambda: chosen.featurize_many(smiles, n_jobs=n_jobs),
        source_checksums=[checksum or text_checksum(smiles), smiles_column],
        cache_dir=cache_dir,
        use_cache=use_cache,
        n_molecules=len(smiles),
    )
    targets = [TargetInfo(name=str(c), column=str(c)) for c in target_columns]
    return assemble(batch, smiles, raw_targets, targets, chosen.spec)


def fit_domain(
    dataset: MoleculeDataset, index: Sequence[int] | np.ndarray | torch.Tensor | None = None
) -> ApplicabilityDomain:
    """The applicability domain of a model trained on the molecules ``index`` of ``dataset``.

    Fitted from the facts computed at featurization (no SMILES is parsed again): milliseconds
    for QM9's 110,000 training molecules.

    Args:
        index: ``[N]`` positions of the training molecules in ``dataset`` (e.g. ``split.train``);
            None takes every molecule.

    Raises:
        ValueError: ``index`` selects no molecule.
    """
    if index is None:
        return ApplicabilityDomain().fit(dataset.facts)
    index = np.asarray(torch.as_tensor(index, dtype=torch.long).cpu())
    return ApplicabilityDomain().fit(dataset.facts.select(index))
