"""The :class:`Predictor`: properties for new SMILES from one trained model or an ensemble.

Inference flow: SMILES → featurizer (per chunk, in bulk) → one forward per mini-batch per member
→ float arrays → one DataFrame. Every input gives exactly one output row, in input order; a
molecule that cannot be featurized gets ``valid=False``, its reason in ``error`` and NaN properties.
A valid molecule outside the applicability domain stored with the model gets ``in_domain=False``
and the reason in ``domain_note``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import torch

from molmtl._device import resolve_device
from molmtl.featurizers import ApplicabilityDomain, Featurizer, from_spec
from molmtl.graphs import PackedGraphs
from molmtl.models import MultiTaskModel, RunDirError, load_model
from molmtl.predict._columns import STD_SUFFIX, output_columns
from molmtl.predict._domain import EnsembleDomain, stored_domain
from molmtl.predict._errors import PredictorError
from molmtl.predict._stream import stream_csv
from molmtl.predict._summary import PredictionSummary
from molmtl.pretrained import get_model

RunDir = str | PathLike[str]

#: molecules featurized together (bounds the memory of one chunk of graphs)
DEFAULT_CHUNK_SIZE = 10_000
#: molecules per forward pass: on CPU small batches stay in cache (measured in
#: scripts/bench_predict.py), on an accelerator large ones fill the device
CPU_BATCH_SIZE = 256
ACCELERATOR_BATCH_SIZE = 4096
#: larger settings are mistakes, refused before any work: a chunk of a million molecules holds
#: gigabytes of graphs, and a forward pass of 100,000 fills a GPU's memory
MAX_CHUNK_SIZE = 1_000_000
MAX_BATCH_SIZE = 100_000


@dataclass(frozen=True)
class Prediction:
    """Row-aligned prediction arrays for ``n`` inputs and ``T`` targets.

    ``mean`` holds the model's (or the ensemble's mean) prediction in physical units, ``std`` the
    ensemble members' standard deviation (``ddof=0``), ``None`` for a single model. Rows of invalid
    inputs are NaN.
    """

    smiles: list  # [n] the inputs, missing values as ''
    valid: np.ndarray  # [n] bool
    error: list[str]  # [n] '' when valid
    in_domain: np.ndarray  # [n] bool, False for invalid rows
    domain_note: list[str]  # [n] why a valid row is outside the domain, '' otherwise
    mean: np.ndarray  # [n, T] float64
    std: np.ndarray | None  # [n, T] float64


class Predictor:
    """Predicts properties for SMILES with one trained model or an ensemble of them.

    Build it with :meth:`load`. Ensemble members share the featurizer and the targets; their
    predictions are averaged and their spread is reported as ``<target>_std``, the population
    standard deviation over members (``ddof=0``, the spread of the ensemble as a mixture).
    A molecule is in the domain when it is inside every member's applicability domain.

    Attributes:
        targets: property names, in output column order.
        units: the physical unit of each property, aligned with ``targets``.
        domains: each member's applicability domain; None for a run directory that stores
            none, judged by QM9's chemistry (``QM9_DOMAIN``) with a note saying so.
        device: where the models run.
    """

    def __init__(
        self,
        models: Sequence[MultiTaskModel],
        featurizer: Featurizer,
        targets: Sequence[str],
        units: Sequence[str],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        batch_size: int | None = None,
        n_jobs: int | None = None,
        domains: Sequence[ApplicabilityDomain | None] | None = None,
    ) -> None:
        if not models:
            raise PredictorError("a Predictor needs at least one model")
        if len(targets) != len(units):
            raise PredictorError(f"got {len(targets)} targets but {len(units)} units")
        self.domains = [None] * len(models) if domains is None else list(domains)
        if len(self.domains) != len(models):
            raise PredictorError(f"got {len(models)} models but {len(self.domains)} domains")
        self._domain = EnsembleDomain(self.domains)
        self.models = [model.eval() for model in models]
        self.device = next(iter(self.models[0].buffers())).device
        if batch_size is None:
            batch_size = CPU_BATCH_SIZE if self.device.type == "cpu" else ACCELERATOR_BATCH_SIZE
        _check_settings(chunk_size, batch_size, n_jobs)
        self.featurizer = featurizer
        self.targets = list(targets)
        self.units = list(units)
        self.chunk_size = chunk_size
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        # fail at construction, not at the first file: a target named like another's std column
        output_columns(self.targets, ensemble=self.is_ensemble)

    @classmethod
    def load(
        cls,
        run_dirs: RunDir | Sequence[RunDir],
        device: str | torch.device | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        batch_size: int | None = None,
        n_jobs: int | None = None,
    ) -> Predictor:
        """Load a trained model, or an ensemble from several run directories.

        Args:
            run_dirs: a run directory written by ``molmtl train``, or a list of them.
            device: ``"cpu"``, ``"cuda"``, ...; ``None`` picks CUDA when available.
            chunk_size: molecules featurized together (bounds memory).
            batch_size: molecules per forward pass (default: 256 on CPU, 4096 on a GPU).
            n_jobs: featurization worker processes per chunk, ``-1`` for all CPUs, ``None`` to let
                ``Featurizer.featurize_many`` decide (one process below 20,000 molecules).

        Raises:
            RunDirError: a run directory is missing, incomplete, tampered with, or written by an
                incompatible version (the weights are read tensor-only: nothing is unpickled),
                or its stored domain is unreadable.
            FeaturizerSpecError: the stored featurizer differs from this code's.
            PredictorError: ensemble members disagree on featurizer or targets.
        """
        dirs = [run_dirs] if isinstance(run_dirs, str | PathLike) else list(run_dirs)
        if not dirs:
            raise PredictorError("no run directory given")
        _check_settings(chunk_size, batch_size, n_jobs)  # before any model is read
        device = _resolve_device(device)
        members = [(Path(run_dir), *load_model(run_dir, device=device)) for run_dir in dirs]
        first_dir, _, first_config = members[0]
        targets, units = _targets_and_units(first_config, first_dir)
        for run_dir, _, config in members[1:]:
            _check_same_member(first_dir, first_config, run_dir, config)
        featurizer = from_spec(first_config["featurizer"])
        return cls(
            [model for _, model, _ in members],
            featurizer,
            targets,
            units,
            chunk_size=chunk_size,
            batch_size=batch_size,
            n_jobs=n_jobs,
            domains=[stored_domain(config, run_dir) for run_dir, _, config in members],
        )

    @classmethod
    def pretrained(
        cls,
        name: str | None = None,
        device: str | torch.device | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        batch_size: int | None = None,
        n_jobs: int | None = None,
    ) -> Predictor:
        """A model shipped with molmtl: ``name`` from :func:`molmtl.pretrained.available_models`,
        default :data:`molmtl.pretrained.DEFAULT_MODEL` (QM9, 11 properties; docs/pretrained.md).

        Its files are checked against the SHA-256 recorded in the code before they are read;
        the other arguments are those of :meth:`load`.

        Raises:
            ShippedModelError: no shipped model has that name, or its files were changed.
        """
        with get_model(name).folder() as folder:
            return cls.load(
                folder, device, chunk_size=chunk_size, batch_size=batch_size, n_jobs=n_jobs
            )

    @property
    def is_ensemble(self) -> bool:
        return len(self.models) > 1

    @property
    def columns(self) -> list[str]:
        """Columns of :meth:`predict`'s DataFrame, in order."""
        return ["smiles", *output_columns(self.targets, ensemble=self.is_ensemble)]

    @property
    def column_units(self) -> dict[str, str]:
        """Unit of each property column of :meth:`predict` (``<target>_std`` included)."""
        units = {}
        for target, unit in zip(self.targets, self.units, strict=True):
            units[target] = unit
            if self.is_ensemble:
                units[target + STD_SUFFIX] = unit
        return units

    def predict(
        self,
        smiles: str | Iterable[str] | pd.Series | pd.DataFrame | np.ndarray,
        *,
        smiles_column: str | None = None,
    ) -> pd.DataFrame:
        """Predict properties, one row per input in input order.

        Args:
            smiles: one SMILES; a list, tuple, 1-D numpy array or other ordered iterable of
                them; a Series (its index is kept); or a DataFrame with a SMILES column (its
                index is kept). Missing values (None, NaN, pd.NA) and non-strings give invalid
                rows, not an exception.
            smiles_column: the SMILES column of a DataFrame; default: its one column named
                ``smiles`` in any case.

        Raises:
            PredictorError: a DataFrame without that column, or with several ``smiles`` columns.
            TypeError: ``smiles`` is none of the above (bytes, a dict, a set: no row order).

        Returns:
            DataFrame with ``smiles``, ``valid``, ``error``, ``in_domain``, ``domain_note`` (why
            a valid molecule is outside the domain, '' otherwise), one float column per target
            (physical units, NaN when invalid) and, for an ensemble, ``<target>_std``.
        """
        values, index = _smiles_and_index(smiles, smiles_column)
        prediction = self.predict_arrays(values)
        frame = self.to_frame(prediction, index=index)
        frame.insert(0, "smiles", prediction.smiles)
        return frame

    def predict_arrays(
        self, smiles: Iterable[str | None] | pd.DataFrame | np.ndarray
    ) -> Prediction:
        """Like :meth:`predict` (the same inputs, a DataFrame's SMILES column found by name) but
        returns the raw aligned arrays (no DataFrame)."""
        texts = _normalize(_smiles_and_index(smiles, None)[0])
        n = len(texts)
        n_tasks = len(self.targets)
        valid = np.zeros(n, dtype=bool)
        in_domain = np.zeros(n, dtype=bool)
        domain_notes = [""] * n
        errors: list[str] = []
        mean = np.full((n, n_tasks), np.nan)
        std = np.full((n, n_tasks), np.nan) if self.is_ensemble else None
        for start in range(0, n, self.chunk_size):
            stop = min(start + self.chunk_size, n)
            featurized = self.featurizer.featurize_many(texts[start:stop], n_jobs=self.n_jobs)
            valid[start:stop] = featurized.valid
            errors.extend(featurized.errors)
            if len(featurized.graphs) == 0:
                continue
            rows = start + np.flatnonzero(featurized.valid)
            in_domain[rows], notes = self._domain.check(featurized.facts)
            for row, note in zip(rows, notes, strict=True):
                domain_notes[row] = note
            members = self._forward(featurized.graphs)  # [M, G, T]
            mean[rows] = members.mean(axis=0)
            if std is not None:
                std[rows] = members.std(axis=0, ddof=0)
        return Prediction(texts, valid, errors, in_domain, domain_notes, mean, std)

    def to_frame(
        self, prediction: Prediction, *, index: pd.Index | None = None, prefix: str = ""
    ) -> pd.DataFrame:
        """The prediction columns (all but ``smiles``) as a DataFrame, names with ``prefix``."""
        columns: dict[str, object] = {
            "valid": prediction.valid,
            "error": prediction.error,
            "in_domain": prediction.in_domain,
            "domain_note": prediction.domain_note,
        }
        for task, target in enumerate(self.targets):
            columns[target] = prediction.mean[:, task]
            if prediction.std is not None:
                columns[target + STD_SUFFIX] = prediction.std[:, task]
        return pd.DataFrame(
            {prefix + name: values for name, values in columns.items()}, index=index
        )

    def predict_file(
        self,
        in_csv: str | PathLike[str] | IO[str],
        out_csv: str | PathLike[str] | IO[str],
        *,
        smiles_column: str = "smiles",
        prefix: str = "pred_",
        chunk_size: int | None = None,
    ) -> PredictionSummary:
        """Stream a CSV of any length through the model with bounded memory.

        Every input column is copied unchanged (read as text, so ids such as ``007`` survive);
        prediction columns are appended as ``<prefix>valid``, ``<prefix>error``,
        ``<prefix>in_domain``, ``<prefix>domain_note``, ``<prefix><target>`` (and
        ``<prefix><target>_std`` for an ensemble). A file path is written atomically: a failed
        run leaves no partial output.

        Args:
            in_csv: path or text stream of the input CSV.
            out_csv: path or text stream of the output CSV.
            smiles_column: the column holding SMILES.
            prefix: prepended to every prediction column; must not create a name that an input
                column already has.
            chunk_size: rows per chunk (default: the predictor's ``chunk_size``).

        Returns:
            counts of rows, invalid rows and valid rows outside the model's domain.

        Raises:
            PredictorError: the SMILES column is missing (the message lists the columns there
                are) or a prediction column would overwrite an input column.
        """

        def predict_chunk(
            smiles: list[str], index: pd.Index
        ) -> tuple[pd.DataFrame, PredictionSummary]:
            prediction = self.predict_arrays(smiles)
            counts = PredictionSummary.count(prediction.valid, prediction.in_domain)
            return self.to_frame(prediction, index=index, prefix=prefix), counts

        return stream_csv(
            in_csv,
            out_csv,
            predict_chunk,
            added_columns=[
                prefix + name for name in output_columns(self.targets, ensemble=self.is_ensemble)
            ],
            smiles_column=smiles_column,
            chunk_size=self.chunk_size
            if chunk_size is None
            else _check_count("chunk_size", chunk_size, MAX_CHUNK_SIZE),
        )

    def _forward(self, graphs: PackedGraphs) -> np.ndarray:
        """Members' predictions ``[M, G, T]`` (physical units) for the ``G`` packed graphs."""
        graphs = graphs.to(self.device)
        outputs = []
        with torch.inference_mode():
            for _, batch in graphs.batches(torch.arange(len(graphs)), self.batch_size):
                outputs.append(torch.stack([model.predict(batch) for model in self.models]))
            # one device-to-host copy per chunk
            return torch.cat(outputs, dim=1).to(torch.float64).cpu().numpy()


def _resolve_device(device: str | torch.device | None) -> torch.device:
    try:
        return resolve_device(device, use="prediction")
    except ValueError as error:
        raise PredictorError(str(error)) from error


def _check_settings(chunk_size: int, batch_size: int | None, n_jobs: int | None) -> None:
    _check_count("chunk_size", chunk_size, MAX_CHUNK_SIZE)
    if batch_size is not None:
        _check_count("batch_size", batch_size, MAX_BATCH_SIZE)
    try:
        Featurizer.check_n_jobs(n_jobs)
    except ValueError as error:
        raise PredictorError(str(error)) from None


def _check_count(name: str, value: int, limit: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
        raise PredictorError(f"{name} must be an integer from 1 to {limit:,}, got {value!r}")
    return value


def _smiles_and_index(smiles: object, smiles_column: str | None) -> tuple[list, pd.Index | None]:
    """The SMILES of :meth:`Predictor.predict`'s input as a list, and the index to keep."""
    if isinstance(smiles, pd.DataFrame):
        column = _smiles_column_of(smiles, smiles_column)
        return smiles[column].tolist(), smiles.index
    if smiles_column is not None:
        raise PredictorError(
            f"smiles_column={smiles_column!r} applies to a DataFrame, got {type(smiles).__name__}"
        )
    if isinstance(smiles, pd.Series):
        return smiles.tolist(), smiles.index
    if isinstance(smiles, str):
        return [smiles], None
    if isinstance(smiles, np.ndarray):
        if smiles.ndim > 1:
            raise TypeError(f"smiles must be a 1-D array, got shape {smiles.shape}")
        return smiles.reshape(-1).tolist(), None
    if isinstance(smiles, bytes | bytearray | Mapping | Set) or not isinstance(smiles, Iterable):
        why = " (it has no row order to keep)" if isinstance(smiles, Mapping | Set) else ""
        raise TypeError(
            "smiles must be a string, a list of strings, a pandas Series or DataFrame, got "
            f"{type(smiles).__name__}{why}"
        )
    return list(smiles), None


def _smiles_column_of(frame: pd.DataFrame, smiles_column: str | None) -> object:
    """The column of ``frame`` holding SMILES: ``smiles_column``, else the one named 'smiles'
    in any case."""
    names = [str(name) for name in frame.columns[:20]]
    if smiles_column is not None:
        if smiles_column not in frame.columns:
            raise PredictorError(
                f"the DataFrame has no column {smiles_column!r}; its columns are {names}"
            )
        if isinstance(frame[smiles_column], pd.DataFrame):
            raise PredictorError(f"the DataFrame has several columns named {smiles_column!r}")
        return smiles_column
    found = [name for name in frame.columns if isinstance(name, str) and name.lower() == "smiles"]
    if len(found) != 1:
        problem = "no column named 'smiles'" if not found else f"several SMILES columns {found}"
        raise PredictorError(
            f"the DataFrame has {problem} (in any case); its columns are {names}: "
            "name the column with smiles_column="
        )
    return found[0]


def _normalize(smiles: Sequence[object]) -> list:
    """Missing values (None, NaN, pd.NA, NaT) become '' so they are reported as empty SMILES;
    other non-strings go through, and the featurizer reports them as invalid rows."""
    return ["" if _is_missing(value) else value for value in smiles]


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float | np.floating) and bool(np.isnan(value))


def _targets_and_units(config: dict, run_dir: Path) -> tuple[list[str], list[str]]:
    try:
        targets = config["targets"]
        return [t["name"] for t in targets], [t["unit"] for t in targets]
    except (KeyError, TypeError) as error:
        raise RunDirError(
            f"{run_dir / 'config.json'}: 'targets' must be a list of {{'name', 'unit'}} entries"
        ) from error


def _check_same_member(first_dir: Path, first: dict, other_dir: Path, other: dict) -> None:
    """Ensemble members must featurize alike and predict the same targets in the same units."""
    if other["featurizer"] != first["featurizer"]:
        raise PredictorError(
            f"ensemble members use different featurizers: {first_dir} has "
            f"{_describe_spec(first['featurizer'])}, {other_dir} has {_describe_spec(other['featurizer'])}"
        )
    first_targets = _targets_and_units(first, first_dir)
    other_targets = _targets_and_units(other, other_dir)
    if other_targets != first_targets:
        raise PredictorError(
            f"ensemble members predict different targets: {first_dir} has "
            f"{_describe_targets(*first_targets)}, {other_dir} has {_describe_targets(*other_targets)}"
        )


def _describe_spec(spec: dict) -> str:
    return f"{spec.get('name')!r} v{spec.get('version')} ({spec.get('options', {})})"


def _describe_targets(names: list[str], units: list[str]) -> str:
    return (
        "[" + ", ".join(f"{name} ({unit})" for name, unit in zip(names, units, strict=True)) + "]"
    )
