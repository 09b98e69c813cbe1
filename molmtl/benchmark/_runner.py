"""Planning and running a benchmark: one run directory per (method or target, seed).

Every run is an ordinary :func:`molmtl.training.train` run directory, so an interrupted
benchmark resumes where it stopped: finished runs are kept, a run killed mid-way continues from
its last checkpoint, and the rest start. Runs execute in worker processes (one fresh process per
run, so each run's peak memory is its own), ``jobs`` at a time.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from molmtl._threads import resolve_threads
from molmtl._version import __version__
from molmtl.benchmark._protocols import Protocol, get_protocol
from molmtl.data import QM9_DEFAULT_TASKS
from molmtl.rundir import RunDir, atomic_write_text
from molmtl.training import TrainConfig, load_dataset, train

MANIFEST_FILE = "benchmark.json"
#: written into a run directory once its run has finished (wall time, peak memory)
RUN_RECORD_FILE = "benchmark_run.json"
#: molecules of the fixed batch on which every multi-task run logs per-task gradient norms
GRADIENT_PROBE = 256


class BenchmarkError(ValueError):
    """A benchmark cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class PlannedRun:
    """One training run of a benchmark: a single-task reference or a multi-task method."""

    kind: str  # "stl" (label = target) or "mtl" (label = method label)
    label: str
    seed: int
    config: TrainConfig

    @property
    def run_dir(self) -> Path:
        return Path(self.config.out)

    @property
    def name(self) -> str:
        return f"{self.kind} {self.label} seed {self.seed}"

    def is_done(self) -> bool:
        return (self.run_dir / RUN_RECORD_FILE).is_file()


def default_targets(settings: dict[str, Any]) -> list[str]:
    """The targets every run of the protocol predicts (QM9's 11 benchmark tasks by default)."""
    if settings.get("targets"):
        return list(settings["targets"])
    return list(QM9_DEFAULT_TASKS)


def plan_runs(
    protocol: Protocol,
    out: Path,
    *,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    settings: dict[str, Any] | None = None,
) -> list[PlannedRun]:
    """Every run of the benchmark, seed by seed (references first), so a partial benchmark holds
    complete seeds.

    Args:
        methods: labels of the protocol's methods to run (default: all).
        seeds: seeds to run (default: the protocol's).
        settings: TrainConfig fields that replace the protocol's (e.g. ``data``, ``device``).
    """
    chosen = [protocol.method(label) for label in methods] if methods else protocol.methods
    shared = {**protocol.settings, **(settings or {}), "progress": False}
    targets = default_targets(shared)
    runs: list[PlannedRun] = []
    for seed in seeds if seeds is not None else protocol.seeds:
        for target in targets:
            config = {**shared, "targets": [target], "balancer": "ew", "balancer_options": {}}
            runs.append(_planned("stl", target, seed, config, out))
        for method in chosen:
            config = {
                **shared,
                "targets": targets,
                "balancer": method.balancer,
                "balancer_options": dict(method.options),
                "gradient_probe": GRADIENT_PROBE,
            }
            runs.append(_planned("mtl", method.label, seed, config, out))
    return runs


def _planned(kind: str, label: str, seed: int, values: dict[str, Any], out: Path) -> PlannedRun:
    run_dir = out / "runs" / kind / label / f"seed{seed}"
    config = TrainConfig.from_dict({**values, "seed": seed, "out": str(run_dir)})
    return PlannedRun(kind, label, seed, config)


def run_benchmark(
    protocol: str | Protocol,
    out: str | os.PathLike,
    *,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    jobs: int = 1,
    threads: int | str | None = None,
    settings: dict[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[PlannedRun]:
    """Run (or continue) a benchmark into ``out`` and return the runs that failed.

    Args:
        protocol: a name from :data:`PROTOCOLS` or a :class:`Protocol`.
        out: the benchmark directory; ``out/runs/`` holds one run directory per run.
        jobs: runs at a time, each in its own process.
        threads: torch threads per run, a number or ``"auto"`` (default: ``$MOLMTL_THREADS``,
            else the free cores divided by ``jobs``; see :mod:`molmtl._threads`).
        settings: TrainConfig fields replacing the protocol's, recorded in the manifest; a
            benchmark directory refuses to continue with other settings.
        log: where progress lines go (default: stderr).
    """
    protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
    out = Path(out)
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if jobs < 1:
        raise BenchmarkError(f"jobs must be >= 1, got {jobs}")
    if out.exists() and not out.is_dir():
        raise BenchmarkError(f"out: {out} exists and is not a directory")
    threads = resolve_threads(threads, jobs=jobs)
    _write_manifest(out, protocol, settings or {})
    runs = plan_runs(protocol, out, methods=methods, seeds=seeds, settings=settings)
    for run in runs:
        _check_matches_plan(run)
    pending = [run for run in runs if not run.is_done()]
    log(
        f"{protocol.name}: {len(runs) - len(pending)} of {len(runs)} runs done, {len(pending)} to run"
    )
    if not pending:
        return []
    _warm_cache(pending[0].config)
    return _execute_all(pending, jobs, threads, log)


def _execute_all(
    pending: list[PlannedRun], jobs: int, threads: int, log: Callable[[str], None]
) -> list[PlannedRun]:
    failed = []
    context = get_context("spawn")  # a fresh interpreter per run: no inherited torch state
    with ProcessPoolExecutor(jobs, mp_context=context, max_tasks_per_child=1) as pool:
        futures = {pool.submit(execute_run, run.config.to_dict(), threads): run for run in pending}
        for finished, future in enumerate(as_completed(futures), 1):
            run = futures[future]
            error = future.exception()
            outcome = future.result() if error is None else {"error": repr(error)}
            if "error" in outcome:
                failed.append(run)
                log(f"[{finished}/{len(pending)}] {run.name}: FAILED: {outcome['error']}")
            else:
                log(f"[{finished}/{len(pending)}] {run.name}: {outcome['wall_seconds']:.0f} s")
    return failed


def execute_run(config_values: dict[str, Any], threads: int) -> dict[str, Any]:
    """Train one planned run (resuming it if it was interrupted) in this process.

    Returns the run record written to ``RUN_RECORD_FILE``, or ``{"error": message}``.
    """
    import torch

    torch.set_num_threads(threads)
    config = TrainConfig.from_dict(config_values)
    run_dir = RunDir(config.out)
    resume = run_dir.has_checkpoint()
    started = time.perf_counter()
    try:
        train(config, resume=resume, overwrite=not resume)
    except Exception as error:  # reported by the parent; the other runs go on
        return {"error": f"{type(error).__name__}: {error}"}
    record = {
        "wall_seconds": round(time.perf_counter() - started, 3),
        "resumed": resume,
        "threads": threads,
        **_peak_memory(config.device),
    }
    atomic_write_text(run_dir.path / RUN_RECORD_FILE, json.dumps(record, indent=2) + "\n")
    return record


def _peak_memory(device: str) -> dict[str, Any]:
    """This process's peak memory: CUDA's peak allocation on a GPU, else the peak RSS."""
    import torch

    if torch.cuda.is_available() and device != "cpu" and torch.cuda.max_memory_allocated() > 0:
        return {"peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20, "memory": "cuda"}
    # ru_maxrss is in KiB on Linux
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"peak_memory_mb": rss_kib / 1024, "memory": "cpu max RSS"}


def _warm_cache(config: TrainConfig) -> None:
    """Featurize once here, so parallel runs read the cache instead of racing to write it."""
    load_dataset(config)


def _check_matches_plan(run: PlannedRun) -> None:
    """Refuse to mix a benchmark directory's runs of other settings with this plan's."""
    run_dir = RunDir(run.run_dir)
    if not run_dir.config_path.is_file():
        return
    changed = run_dir.changed_settings(run.config.to_dict())
    if changed:
        raise BenchmarkError(
            f"{run.run_dir} holds a run with other settings for {changed} than this benchmark "
            "plans; continue it with the settings it was started with, or use another --out"
        )


def _write_manifest(out: Path, protocol: Protocol, settings: dict[str, Any]) -> None:
    """Record the protocol and settings; a directory of another protocol or settings is refused."""
    import torch

    path = out / MANIFEST_FILE
    identity = {"protocol": protocol.name, "settings": _result_settings(settings)}
    if path.is_file():
        stored = json.loads(path.read_text())
        if {k: stored.get(k) for k in identity} != identity:
            raise BenchmarkError(
                f"{out} holds a benchmark of {stored.get('protocol')!r} with settings "
                f"{stored.get('settings')}; this one is {identity['protocol']!r} with "
                f"{identity['settings']}: use another --out"
            )
    manifest = {
        **identity,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        },
        "versions": {
            "molmtl": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(manifest, indent=2) + "\n")


#: settings that do not change a benchmark's results: where the data lies, which device runs
PLACEMENT_SETTINGS = ("data", "device", "cache_dir", "progress", "out")


def _result_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that change results (unlike a resumed run, a benchmark keeps its epochs)."""
    return {k: v for k, v in sorted(settings.items()) if k not in PLACEMENT_SETTINGS}


def read_manifest(out: str | os.PathLike) -> dict[str, Any]:
    path = Path(out) / MANIFEST_FILE
    if not path.is_file():
        raise BenchmarkError(f"{out} is not a benchmark directory: {path} does not exist")
    return json.loads(path.read_text())
