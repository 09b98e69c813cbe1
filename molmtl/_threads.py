"""The CPU thread policy: how many intra-op threads torch uses, and how idle threads wait.

On a machine where other processes compete for the cores, intra-op threads that wait for each
other on a shared core can make a step tens of times slower (docs/benchmarks.md, "CPU threads").
So molmtl's command line picks the thread count from the cores that are free when it starts:

    auto = max(1, usable cores − cores busy with other processes)

The busy cores are measured over a quarter of a second from the per-core counters of
``/proc/stat``; the 1-minute load average, used where there is no ``/proc/stat``, lags by a
minute and so misjudged a machine that had just become idle or busy.
``MOLMTL_THREADS`` (or ``--threads``) overrides it with a number or ``auto``.
"""

from __future__ import annotations

import os
import time

THREADS_VARIABLE = "MOLMTL_THREADS"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. under taskset or a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: how long :func:`busy_cores` watches the per-core counters (the cost of ``auto`` at start-up)
SAMPLE_SECONDS = 0.25
#: more threads than this many per usable core only make torch slower: refused as a mistake
MAX_THREADS_PER_CORE = 4


def busy_cores(seconds: float = SAMPLE_SECONDS) -> float:
    """Cores of this process's affinity kept busy by other processes, watched for ``seconds``.

    Falls back to the 1-minute load average where ``/proc/stat`` cannot be read.
    """
    first = _core_counters()
    if first is None:
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0
    time.sleep(seconds)
    second = _core_counters() or first
    busy = 0.0
    for core in _affinity() & first.keys() & second.keys():
        (busy_then, total_then), (busy_now, total_now) = first[core], second[core]
        if total_now > total_then:
            busy += (busy_now - busy_then) / (total_now - total_then)
    return busy


def _core_counters() -> dict[int, tuple[int, int]] | None:
    """Core number → (busy, total) jiffies since boot, from ``/proc/stat``; None if unreadable."""
    try:
        with open("/proc/stat") as file:
            lines = [line.split() for line in file if line.startswith("cpu") and line[3].isdigit()]
    except OSError:
        return None
    counters = {}
    for name, *fields in lines:
        values = [
            int(value) for value in fields[:8]
        ]  # user nice system idle iowait irq softirq steal
        idle = values[3] + values[4]
        counters[int(name[3:])] = (sum(values) - idle, sum(values))
    return counters


def _affinity() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:
        return set(range(os.cpu_count() or 1))


def auto_threads(jobs: int = 1) -> int:
    """Free cores now (usable cores minus those other processes keep busy), split over ``jobs``."""
    free = max(1, usable_cores() - round(busy_cores()))
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
    limit = MAX_THREADS_PER_CORE * usable_cores()
    if setting > limit:
        raise ValueError(
            f"threads {setting} is more than {MAX_THREADS_PER_CORE} per usable core "
            f"({usable_cores()} cores: at most {limit}); use 'auto' or a smaller number"
        )
    return setting


def threads_argument(text: str) -> int | str:
    """``argparse`` type of ``--threads``: a positive integer or ``auto``."""
    import argparse

    if text == "auto":  # resolved when used: sampling the cores here would do it twice
        return text
    try:
        resolve_threads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return int(text)


def configure_threads(setting: int | str | None = None, *, jobs: int = 1) -> int:
    """Set torch's intra-op threads by :func:`resolve_threads` and return the number."""
    import torch

    threads = resolve_threads(setting, jobs=jobs)
    torch.set_num_threads(threads)
    return threads
