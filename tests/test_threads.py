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
    ("load", "jobs", "expected"), [(0.0, 1, 2), (0.9, 1, 1), (3.5, 1, 1), (0.0, 2, 1)]
)
def test_auto_takes_the_free_cores_split_over_jobs(two_cores, monkeypatch, load, jobs, expected):
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert auto_threads(jobs) == expected == resolve_threads("auto", jobs=jobs)


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
