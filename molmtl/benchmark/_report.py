"""A benchmark's results: per-run test MAEs, Δm% against our own single-task models, tables, plots.

Δm% of a multi-task run at seed s is ``100/T · Σ_t (MAE_t − STL_t,s) / STL_t,s`` where
``STL_t,s`` is the test MAE of the single-task model of target t trained at the same seed (same
split, encoder, epochs and selection rule). Every finished seed is reported.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from molmtl.benchmark._plots import plot_benchmark
from molmtl.benchmark._protocols import Protocol, get_protocol
from molmtl.benchmark._runner import RUN_RECORD_FILE, read_manifest
from molmtl.rundir import METRICS_FILE, TEST_METRICS_FILE, atomic_write_text

SUMMARY_COLUMNS = [
    "method",
    "delta_m_mean",
    "delta_m_std",
    "seeds",
    "seconds_per_epoch",
    "peak_memory_mb",
    "mean_rank",
    "published_delta_m",
    "note",
]


def _finished_runs(out: Path, kind: str) -> list[tuple[str, int, Path]]:
    """(label, seed, run directory) of every finished run of ``kind`` under ``out``."""
    found = []
    for record in sorted((out / "runs" / kind).glob(f"*/seed*/{RUN_RECORD_FILE}")):
        run_dir = record.parent
        found.append((run_dir.parent.name, int(run_dir.name.removeprefix("seed")), run_dir))
    return found


def _run_rows(label: str, seed: int, run_dir: Path) -> list[dict[str, Any]]:
    metrics = json.loads((run_dir / TEST_METRICS_FILE).read_text())
    return [
        {
            "label": label,
            "seed": seed,
            "task": task,
            "unit": metrics["units"][task],
            "test_mae": mae,
        }
        for task, mae in metrics["mae"].items()
    ]


def _run_costs(label: str, seed: int, run_dir: Path) -> dict[str, Any]:
    record = json.loads((run_dir / RUN_RECORD_FILE).read_text())
    epochs = pd.read_csv(run_dir / METRICS_FILE)
    return {
        "label": label,
        "seed": seed,
        "seconds_per_epoch": float(epochs["seconds"].median()),
        "peak_memory_mb": record["peak_memory_mb"],
        "wall_seconds": record["wall_seconds"],
    }


def collect(out: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``results`` (method, seed, task, unit, test_mae), ``stl`` (task, seed, unit, test_mae)
    and ``costs`` (method, seed, seconds_per_epoch, peak_memory_mb, wall_seconds)."""
    mtl = _finished_runs(out, "mtl")
    results = pd.DataFrame(
        [row for run in mtl for row in _run_rows(*run)],
        columns=["label", "seed", "task", "unit", "test_mae"],
    ).rename(columns={"label": "method"})
    stl = pd.DataFrame(
        [row for run in _finished_runs(out, "stl") for row in _run_rows(*run)],
        columns=["label", "seed", "task", "unit", "test_mae"],
    ).drop(columns="label")
    costs = pd.DataFrame(
        [_run_costs(*run) for run in mtl],
        columns=["label", "seed", "seconds_per_epoch", "peak_memory_mb", "wall_seconds"],
    ).rename(columns={"label": "method"})
    return results, stl, costs


def delta_m_per_run(results: pd.DataFrame, stl: pd.DataFrame) -> pd.DataFrame:
    """Δm% of every (method, seed) whose every task has a single-task reference at that seed."""
    if results.empty:
        return pd.DataFrame(columns=["method", "seed", "delta_m"])
    merged = results.merge(
        stl[["task", "seed", "test_mae"]], on=["task", "seed"], how="left", suffixes=("", "_stl")
    )
    merged["relative"] = (merged["test_mae"] - merged["test_mae_stl"]) / merged["test_mae_stl"]
    grouped = merged.groupby(["method", "seed"], sort=False)["relative"]
    # a run with any task lacking its reference has no Δm%: a partial mean would mislead
    complete = grouped.apply(lambda values: values.notna().all())
    frame = (100.0 * grouped.mean()).rename("delta_m").reset_index()
    return frame[complete.to_numpy()]


def summarize(
    protocol: Protocol, results: pd.DataFrame, stl: pd.DataFrame, costs: pd.DataFrame
) -> pd.DataFrame:
    """One row per method, in the protocol's order: Δm% over seeds, cost and mean task rank."""
    per_run = delta_m_per_run(results, stl)
    ranks = _mean_task_ranks(results)
    rows = []
    for method in protocol.methods:
        deltas = per_run.loc[per_run["method"] == method.label, "delta_m"]
        if deltas.empty:
            continue
        cost = costs[costs["method"] == method.label]
        rows.append(
            {
                "method": method.label,
                "delta_m_mean": deltas.mean(),
                "delta_m_std": deltas.std(ddof=1) if len(deltas) > 1 else math.nan,
                "seeds": len(deltas),
                "seconds_per_epoch": cost["seconds_per_epoch"].mean(),
                "peak_memory_mb": cost["peak_memory_mb"].max(),
                "mean_rank": ranks.get(method.label, math.nan),
                "published_delta_m": protocol.published_delta_m.get(method.label, math.nan),
                "note": method.note,
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def _mean_task_ranks(results: pd.DataFrame) -> dict[str, float]:
    """Per task, methods ranked by their seed-mean test MAE (1 = best); the mean over tasks."""
    if results.empty:
        return {}
    mean_mae = results.groupby(["task", "method"])["test_mae"].mean().unstack("task")
    return mean_mae.rank(axis=0, method="average").mean(axis=1).to_dict()


def write_report(
    out: str | os.PathLike,
    protocol: str | Protocol | None = None,
    *,
    seeds: Sequence[int] | None = None,
) -> dict[str, Path]:
    """Write ``summary.csv``, ``results.csv``, ``stl.csv``, ``table.md`` and the plots into
    ``out`` from the runs finished so far; return the written paths by name.

    Args:
        seeds: report only these seeds (e.g. those every method has finished, so that all
            methods are compared on the same seeds); default: every finished seed.
    """
    out = Path(out)
    manifest = read_manifest(out)
    protocol = (
        get_protocol(protocol or manifest["protocol"])
        if not isinstance(protocol, Protocol)
        else protocol
    )
    results, stl, costs = (
        frame if seeds is None else frame[frame["seed"].isin(list(seeds))] for frame in collect(out)
    )
    summary = summarize(protocol, results, stl, costs)
    paths = {name: out / f"{name}.csv" for name in ("summary", "results", "stl")}
    for name, frame in (("summary", summary), ("results", results), ("stl", stl)):
        atomic_write_text(paths[name], frame.to_csv(index=False))
    paths["table"] = out / "table.md"
    atomic_write_text(paths["table"], markdown_table(protocol, manifest, summary, results, stl))
    paths.update(plot_benchmark(out, summary, delta_m_per_run(results, stl)))
    return paths


def _number(value: float, digits: int = 1) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def markdown_table(
    protocol: Protocol,
    manifest: dict[str, Any],
    summary: pd.DataFrame,
    results: pd.DataFrame,
    stl: pd.DataFrame,
) -> str:
    """The summary and the per-task MAEs as Markdown, with the protocol and the machine."""
    machine, versions = manifest["machine"], manifest["versions"]
    lines = [
        f"Protocol `{protocol.name}`: {protocol.description}",
        "",
        "Tuning budget: none for any method (every method at its paper's or authors' defaults, "
        "the protocol's learning rate and schedule); model selection on the validation split.",
        f"Machine: {machine['processor']}, {machine['cpu_count']} CPUs"
        + (f", {machine['cuda']}" if machine.get("cuda") else "")
        + f"; molmtl {versions['molmtl']}, torch {versions['torch']}, "
        f"Python {versions['python']}.",
        "",
        "| method | Δm% (mean ± std) | seeds | s/epoch | peak MB | mean rank | published Δm% |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary.sort_values("delta_m_mean").itertuples():
        spread = f" ± {_number(row.delta_m_std)}" if np.isfinite(row.delta_m_std) else ""
        lines.append(
            f"| {row.method} | {_number(row.delta_m_mean)}{spread} | {row.seeds} | "
            f"{_number(row.seconds_per_epoch, 2)} | {_number(row.peak_memory_mb, 0)} | "
            f"{_number(row.mean_rank, 2)} | {_number(row.published_delta_m)} |"
        )
    lines += ["", *_per_task_table(results, stl)]
    return "\n".join(lines) + "\n"


def _per_task_table(results: pd.DataFrame, stl: pd.DataFrame) -> list[str]:
    """Seed-mean test MAE per task (reported units), single-task references first."""
    if results.empty or stl.empty:
        return []
    tasks = list(dict.fromkeys(results["task"]))  # model order
    units = dict(zip(stl["task"], stl["unit"], strict=False))
    reference = stl.groupby("task")["test_mae"].mean()
    methods = results.groupby(["method", "task"])["test_mae"].mean().unstack("task")
    header = "| method | " + " | ".join(f"{t} ({units[t]})" for t in tasks) + " |"
    lines = [header, "|---" * (len(tasks) + 1) + "|"]
    lines.append("| STL (ours) | " + " | ".join(f"{reference[t]:.4g}" for t in tasks) + " |")
    for method, row in methods.iterrows():
        lines.append(
            f"| {method} | " + " | ".join(f"{row.get(t, math.nan):.4g}" for t in tasks) + " |"
        )
    return lines
