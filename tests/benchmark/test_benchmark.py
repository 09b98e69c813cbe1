"""The benchmark end to end on the committed QM9 fixture: plan, run, resume, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from molmtl.benchmark import (
    BenchmarkError,
    get_protocol,
    plan_runs,
    run_benchmark,
    write_report,
)
from molmtl.cli.main import main

FIXTURE_QM9 = Path(__file__).resolve().parents[1] / "fixtures" / "qm9"
TARGETS = ["mu", "homo"]
#: the smoke protocol made seconds-long: two targets, a tiny model, two epochs
TINY = {
    "data": str(FIXTURE_QM9),
    "targets": TARGETS,
    "n_molecules": 200,
    "epochs": 2,
    "model": {"encoder": "gine", "hidden_dim": 8, "n_layers": 1, "out_dim": 8},
    "device": "cpu",
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "smoke"
    failed = run_benchmark("smoke", out, jobs=2, threads=1, settings=TINY, log=lambda _: None)
    assert failed == []
    write_report(out)
    return out


def test_plan_has_one_reference_per_target_and_one_run_per_method_and_seed(tmp_path):
    protocol = get_protocol("reduced")
    runs = plan_runs(protocol, tmp_path, methods=["ew", "dbmtl"], seeds=[0, 1], settings=TINY)
    assert [(r.kind, r.label, r.seed) for r in runs] == [
        (kind, label, seed)
        for seed in (0, 1)
        for kind, label in [("stl", "mu"), ("stl", "homo"), ("mtl", "ew"), ("mtl", "dbmtl")]
    ]
    assert len({r.run_dir for r in runs}) == len(runs)
    for run in runs:
        config = run.config
        assert config.seed == run.seed and config.epochs == 2 and config.split == "random"
        assert config.targets == ([run.label] if run.kind == "stl" else TARGETS)
        assert config.balancer == ("ew" if run.kind == "stl" else run.label)


def test_unknown_method_or_protocol_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"no method .nope.; its methods"):
        plan_runs(get_protocol("smoke"), tmp_path, methods=["nope"])
    with pytest.raises(ValueError, match="unknown protocol 'huge'"):
        run_benchmark("huge", tmp_path)


def test_every_method_of_the_issue_is_in_the_full_protocols():
    wanted = (
        "ew si uw dwa rlw famo gradnorm mgda pcgrad cagrad imtl nashmtl alignedmtl gradmax dbmtl "
        "pcgrad-log nashmtl-log cagrad-log fairgrad upgrad dualproj config stch excessmtl moco "
        "sdmgrad graddrop go4align"
    )
    for name in ("reduced", "paper"):
        assert set(wanted.split()) <= set(get_protocol(name).labels())
        assert get_protocol(name).seeds == (0, 1, 2)


def test_outputs_hold_every_run(finished):
    for name in (
        "summary.csv",
        "results.csv",
        "stl.csv",
        "table.md",
        "delta_m.png",
        "cost.png",
        "dynamics.png",
    ):
        assert (finished / name).is_file(), name
    results = pd.read_csv(finished / "results.csv")
    assert len(results) == 2 * len(TARGETS) and set(results["method"]) == {"ew", "dbmtl"}
    stl = pd.read_csv(finished / "stl.csv")
    assert sorted(stl["task"]) == sorted(TARGETS) and (stl["test_mae"] > 0).all()
    summary = pd.read_csv(finished / "summary.csv")
    assert list(summary.columns[:7]) == [
        "method", "delta_m_mean", "delta_m_std", "seeds", "seconds_per_epoch", "peak_memory_mb", "mean_rank"
    ]  # fmt: skip
    assert (summary["seeds"] == 1).all() and (summary["peak_memory_mb"] > 0).all()
    table = (finished / "table.md").read_text()
    assert "| dbmtl |" in table and "STL (ours)" in table and "Tuning budget" in table


def test_delta_m_is_recomputed_from_the_written_tables(finished):
    results = pd.read_csv(finished / "results.csv")
    stl = pd.read_csv(finished / "stl.csv").set_index("task")["test_mae"]
    summary = pd.read_csv(finished / "summary.csv").set_index("method")
    for method, rows in results.groupby("method"):
        relative = [(row.test_mae - stl[row.task]) / stl[row.task] for row in rows.itertuples()]
        assert summary.loc[method, "delta_m_mean"] == pytest.approx(100 * np.mean(relative))
    # with two methods, the mean ranks over tasks sum to 1 + 2
    assert summary["mean_rank"].sum() == pytest.approx(3.0)


def test_dynamics_come_from_the_gradient_probe(finished):
    metrics = pd.read_csv(finished / "runs" / "mtl" / "ew" / "seed0" / "metrics.csv")
    probe = metrics[[f"probe_grad_norm/{t}" for t in TARGETS]]
    assert len(probe) == 2 and np.isfinite(probe.to_numpy()).all() and (probe > 0).all().all()


def test_a_finished_benchmark_runs_nothing_again(finished):
    before = (
        (finished / "runs" / "mtl" / "dbmtl" / "seed0" / "test_metrics.json").stat().st_mtime_ns
    )
    lines = []
    assert run_benchmark("smoke", finished, settings=TINY, log=lines.append) == []
    assert lines == ["smoke: 4 of 4 runs done, 0 to run"]
    after = (finished / "runs" / "mtl" / "dbmtl" / "seed0" / "test_metrics.json").stat().st_mtime_ns
    assert before == after


def test_an_interrupted_run_resumes_to_the_same_result(finished):
    run_dir = finished / "runs" / "mtl" / "dbmtl" / "seed0"
    expected = json.loads((run_dir / "test_metrics.json").read_text())
    # as if killed after its last checkpoint, before testing
    (run_dir / "benchmark_run.json").unlink()
    (run_dir / "test_metrics.json").unlink()
    lines = []
    assert (
        run_benchmark("smoke", finished, jobs=1, threads=1, settings=TINY, log=lines.append) == []
    )
    assert lines[0] == "smoke: 3 of 4 runs done, 1 to run"
    assert json.loads((run_dir / "test_metrics.json").read_text()) == expected
    assert json.loads((run_dir / "benchmark_run.json").read_text())["resumed"] is True


def test_other_settings_in_the_same_directory_are_refused(finished):
    with pytest.raises(BenchmarkError, match="use another --out"):
        run_benchmark("smoke", finished, settings={**TINY, "epochs": 3})
    with pytest.raises(BenchmarkError, match="'reduced'"):
        run_benchmark("reduced", finished, settings=TINY)


def test_cli_lists_protocols_and_rebuilds_the_report(finished, capsys):
    assert main(["benchmark", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "smoke:" in listed and "reduced:" in listed and "paper:" in listed
    (finished / "summary.csv").unlink()
    assert main(["benchmark", "--report-only", "--out", str(finished)]) == 0
    assert (finished / "summary.csv").is_file()


def test_cli_without_protocol_or_out_fails_with_a_message(capsys, tmp_path):
    assert main(["benchmark", "--out", str(tmp_path)]) == 2
    assert "give --protocol and --out" in capsys.readouterr().err
    assert main(["benchmark", "--report-only", "--out", str(tmp_path / "none")]) == 1
    assert "not a benchmark directory" in capsys.readouterr().err


def test_the_report_can_be_limited_to_chosen_seeds(finished):
    summary = pd.read_csv(write_report(finished, seeds=[0])["summary"])
    assert (summary["seeds"] == 1).all()
    assert pd.read_csv(write_report(finished, seeds=[5])["summary"]).empty
    write_report(finished)


def test_an_out_that_is_a_file_is_refused_before_any_work(tmp_path):
    out = tmp_path / "taken"
    out.write_text("a user's file")
    with pytest.raises(BenchmarkError, match="exists and is not a directory"):
        run_benchmark("smoke", out, settings=TINY)
    assert out.read_text() == "a user's file"
