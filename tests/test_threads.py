"""The CPU thread policy: auto takes the free cores, a setting overrides it, bad values are named."""

from __future__ import annotations

import argparse
import os

import pytest

from molmtl import _threads
from molmtl._threads import auto_threads, resolve_threads, threads_argument


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(_threads, "usable_cores", lambda: 2)
    monkeypatch.delenv(_threads.THREADS_VARIABLE, raising=False)


@pytest.mark.parametrize(
    ("busy", "jobs", "expected"), [(0.0, 1, 2), (0.9, 1, 1), (3.5, 1, 1), (0.0, 2, 1)]
)
def test_auto_takes_the_free_cores_split_over_jobs(two_cores, monkeypatch, busy, jobs, expected):
    monkeypatch.setattr(_threads, "busy_cores", lambda: busy)
    assert auto_threads(jobs) == expected == resolve_threads("auto", jobs=jobs)


def test_busy_cores_counts_only_this_process_cores(monkeypatch):
    # core 0 fully busy, core 1 a quarter busy, core 2 busy but outside the affinity mask
    samples = iter(
        [
            {0: (100, 1000), 1: (0, 1000), 2: (0, 1000)},
            {0: (200, 1100), 1: (25, 1100), 2: (100, 1100)},
        ]
    )
    monkeypatch.setattr(_threads, "_core_counters", lambda: next(samples))
    monkeypatch.setattr(_threads, "_affinity", lambda: {0, 1})
    assert _threads.busy_cores(seconds=0) == pytest.approx(1.25)


def test_busy_cores_falls_back_to_the_load_average(monkeypatch):
    monkeypatch.setattr(_threads, "_core_counters", lambda: None)
    monkeypatch.setattr(os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    assert _threads.busy_cores() == 1.5


def test_this_machines_counters_are_read():
    counters = _threads._core_counters()
    if counters is not None:  # Linux
        assert set(counters) >= _threads._affinity()
        assert all(0 <= busy <= total for busy, total in counters.values())
    assert 0.0 <= _threads.busy_cores(seconds=0.01) <= os.cpu_count() + 0.5


def test_absurd_thread_counts_are_refused(two_cores):
    assert resolve_threads(8) == 8
    with pytest.raises(ValueError, match="threads 9 is more than 4 per usable core"):
        resolve_threads(9)


def test_a_number_or_the_environment_overrides_auto(two_cores, monkeypatch):
    assert resolve_threads(3) == 3 and resolve_threads("4") == 4
    monkeypatch.setenv(_threads.THREADS_VARIABLE, "5")
    assert resolve_threads(None) == 5


@pytest.mark.parametrize("bad", [0, -1, "many", "1.5", True, 2.0])
def test_bad_settings_are_named(bad):
    with pytest.raises(ValueError, match="positive integer or 'auto'"):
        resolve_threads(bad)


def test_the_command_line_type_explains_a_bad_value():
    assert threads_argument("auto") == "auto" and threads_argument("2") == 2
    with pytest.raises(argparse.ArgumentTypeError, match="got 0"):
        threads_argument("0")


def test_the_command_line_type_leaves_auto_for_later(monkeypatch):
    monkeypatch.setattr(_threads, "busy_cores", lambda: pytest.fail("sampled while parsing"))
    assert threads_argument("auto") == "auto"
