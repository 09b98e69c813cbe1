"""The :class:`Predictor`: properties for new SMILES from one trained model or an ensemble.

Inference flow: SMILES → featurizer (per chunk, in bulk) → one forward per mini-batch per member
→ float arrays → one DataFrame. Every input gives exactly one output row, in input order; a
molecule that cannot be featurized gets ``valid=False``, its reason in ``error`` and NaN properties.
A valid molecule outside the applicability domain stored with the model gets ``in_domain=False``
and the reason in ``domain_note``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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

RunDir = str | PathLike[str]

#: molecules featurized together (bounds the memory of one chunk of graphs)
DEFAULT_CHUNK_SIZE = 10_000
#: molecules per forward pass: on CPU small batches stay in cache (measured in
#: scripts/bench_predict.py), on an accelerator large ones fill the device
CPU_BATCH_SIZE = 256
ACCELERATOR_BATCH_SIZE = 4096


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
        _check_positive("chunk_size", chunk_size)
        _check_positive("batch_size", batch_size)
        if n_jobs is not None and n_jobs != -1:
            _check_positive("n_jobs", n_jobs)
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

    def predict(self, smiles: str | Iterable[str] | pd.Series) -> pd.DataFrame:
        """Predict properties, one row per input in input order.

        Args:
            smiles: one SMILES, a list of them, or a Series (its index is kept). Missing values
                (None, NaN) and non-strings give invalid rows, not an exception.

        Returns:
            DataFrame with ``smiles``, ``valid``, ``error``, ``in_domain``, ``domain_note`` (why
            a valid molecule is outside the domain, '' otherwise), one float column per target
            (physical units, NaN when invalid) and, for an ensemble, ``<target>_std``.
        """
        index = smiles.index if isinstance(smiles, pd.Series) else None
        prediction = self.predict_arrays(_as_smiles_list(smiles))
        frame = self.to_frame(prediction, index=index)
        frame.insert(0, "smiles", prediction.smiles)
        return frame

    def predict_arrays(self, smiles: Sequence[str | None]) -> Prediction:
        """Like :meth:`predict` but returns the raw aligned arrays (no DataFrame)."""
        texts = _normalize(smiles)
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
            else _check_positive("chunk_size", chunk_size),
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
        return resolve_device(device)
    except ValueError as error:
        raise PredictorError(str(error)) from error


def _check_positive(name: str, value: int) -> int:
    if not isinstance(value, int) or value < 1:
        allowed = ", -1 (all CPUs) or None (automatic)" if name == "n_jobs" else ""
        raise PredictorError(f"{name} must be a positive integer{allowed}, got {value!r}")
    return value


def _as_smiles_list(smiles: str | Iterable[str] | pd.Series) -> list:
    if isinstance(smiles, str):
        return [smiles]
    if isinstance(smiles, pd.Series):
        return smiles.tolist()
    if isinstance(smiles, bytes | dict) or not isinstance(smiles, Iterable):
        raise TypeError(
            f"smiles must be a string, a list of strings or a pandas Series, got {type(smiles).__name__}"
        )
    return list(smiles)


def _normalize(smiles: Sequence[object]) -> list:
    """Missing values (None, NaN, pd.NA) become '' so they are reported as empty SMILES; other
    non-strings go through, and the featurizer reports them as invalid rows."""
    return ["" if _is_missing(value) else value for value in smiles]


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


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
