"""The CPU thread policy: how many intra-op threads torch uses, and how idle threads wait.

On a machine where other processes compete for the cores, intra-op threads that wait for each
other on a shared core can make a step tens of times slower (docs/benchmarks.md, "CPU threads").
So molmtl's command line picks the thread count from the cores that are free when it starts:

    auto = max(1, usable cores − round(1-minute load average))

``MOLMTL_THREADS`` (or ``--threads``) overrides it with a number or ``auto``.
"""

from __future__ import annotations

import os

THREADS_VARIABLE = "MOLMTL_THREADS"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. under taskset or a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def auto_threads(jobs: int = 1) -> int:
    """Free cores now (usable cores minus the load of other processes), split over ``jobs``."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    free = max(1, usable_cores() - round(load))
    return max(1, free // max(1, jobs))


def resolve_threads(setting: int | str | None = None, *, jobs: int = 1) -> int:
    """The thread count of ``setting`` (an int, ``"auto"``, or None: ``$MOLMTL_THREADS`` or auto).

    Raises:
        ValueError: for anything but a positive integer or ``"auto"``, naming the value.
    """
    if setting is None:
        setting = os.environ.get(THREADS_VARIABLE) or "auto"
    if setting == "auto":
        return auto_threads(jobs)
    if isinstance(setting, str) and setting.strip().isdigit():
        setting = int(setting)
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(f"threads must be a positive integer or 'auto', got {setting!r}")
    return setting


def threads_argument(text: str) -> int | str:
    """``argparse`` type of ``--threads``: a positive integer or ``auto``."""
    import argparse

    try:
        resolve_threads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text if text == "auto" else int(text)


def configure_threads(setting: int | str | None = None, *, jobs: int = 1) -> int:
    """Set torch's intra-op threads by :func:`resolve_threads` and return the number."""
    import torch

    threads = resolve_threads(setting, jobs=jobs)
    torch.set_num_threads(threads)
    return threads
