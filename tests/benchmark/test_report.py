"""Δm% and task ranks on hand-made tables whose answers are known."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from molmtl.benchmark import delta_m_per_run, get_protocol, summarize


def _rows(method: str, seed: int, maes: dict[str, float]) -> list[dict]:
    return [
        {"method": method, "seed": seed, "task": t, "unit": "u", "test_mae": v}
        for t, v in maes.items()
    ]


STL = pd.DataFrame(
    [
        {"task": t, "seed": s, "unit": "u", "test_mae": v}
        for s in (0, 1)
        for t, v in {"a": 1.0, "b": 10.0}.items()
    ]
)


def test_delta_m_is_the_mean_relative_error_against_the_same_seed():
    results = pd.DataFrame(
        _rows("ew", 0, {"a": 2.0, "b": 10.0}) + _rows("ew", 1, {"a": 1.0, "b": 5.0})
    )
    frame = delta_m_per_run(results, STL).set_index("seed")["delta_m"]
    assert frame[0] == pytest.approx(50.0)  # (+100% + 0%) / 2
    assert frame[1] == pytest.approx(-25.0)  # (0% − 50%) / 2


def test_a_run_without_every_reference_has_no_delta_m():
    results = pd.DataFrame(_rows("ew", 2, {"a": 1.0, "b": 10.0}))  # no seed-2 references
    assert delta_m_per_run(results, STL).empty


def test_summary_mean_std_rank_and_order():
    results = pd.DataFrame(
        _rows("ew", 0, {"a": 2.0, "b": 10.0})
        + _rows("ew", 1, {"a": 1.0, "b": 5.0})
        + _rows("dbmtl", 0, {"a": 1.0, "b": 20.0})
    )
    costs = pd.DataFrame(
        [
            {
                "method": "ew",
                "seed": 0,
                "seconds_per_epoch": 1.0,
                "peak_memory_mb": 10.0,
                "wall_seconds": 5,
            },
            {
                "method": "ew",
                "seed": 1,
                "seconds_per_epoch": 3.0,
                "peak_memory_mb": 30.0,
                "wall_seconds": 5,
            },
            {
                "method": "dbmtl",
                "seed": 0,
                "seconds_per_epoch": 5.0,
                "peak_memory_mb": 20.0,
                "wall_seconds": 5,
            },
        ]
    )
    summary = summarize(get_protocol("reduced"), results, STL, costs).set_index("method")
    assert list(summary.index) == ["ew", "dbmtl"]  # the protocol's order
    assert summary.loc["ew", "delta_m_mean"] == pytest.approx(12.5)
    assert summary.loc["ew", "delta_m_std"] == pytest.approx(math.sqrt(2 * 37.5**2))
    assert math.isnan(summary.loc["dbmtl", "delta_m_std"]) and summary.loc["dbmtl", "seeds"] == 1
    assert (
        summary.loc["ew", "seconds_per_epoch"] == 2.0
        and summary.loc["ew", "peak_memory_mb"] == 30.0
    )
    # task a: ew mean 1.5 vs dbmtl 1.0 → ranks 2, 1; task b: ew 7.5 vs 20 → 1, 2
    assert summary.loc["ew", "mean_rank"] == 1.5 == summary.loc["dbmtl", "mean_rank"]
