"""``molmtl.benchmark``: every balancer on one protocol against our own single-task models.

>>> from molmtl.benchmark import run_benchmark, write_report
>>> failed = run_benchmark("smoke", "bench/smoke", jobs=2)
>>> paths = write_report("bench/smoke")  # summary.csv, results.csv, stl.csv, table.md, plots

Each run is a run directory under ``DIR/runs/``, so an interrupted benchmark continues where it
stopped when started again with the same arguments.
"""

from molmtl.benchmark._protocols import PROTOCOLS, MethodRun, Protocol, get_protocol
from molmtl.benchmark._report import collect, delta_m_per_run, summarize, write_report
from molmtl.benchmark._runner import BenchmarkError, PlannedRun, plan_runs, run_benchmark

__all__ = [
    "PROTOCOLS",
    "BenchmarkError",
    "MethodRun",
    "PlannedRun",
    "Protocol",
    "collect",
    "delta_m_per_run",
    "get_protocol",
    "plan_runs",
    "run_benchmark",
    "summarize",
    "write_report",
]
