"""The benchmark's figures: Δm% per method, training dynamics of ew vs dbmtl, Δm% vs cost."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from molmtl.rundir import METRICS_FILE

#: the two methods whose training dynamics are drawn side by side
DYNAMICS_METHODS = ("ew", "dbmtl")


def plot_benchmark(out: Path, summary: pd.DataFrame, per_run: pd.DataFrame) -> dict[str, Path]:
    """Draw what the finished runs allow; return the PNG paths by name."""
    import matplotlib

    matplotlib.use("Agg")
    paths: dict[str, Path] = {}
    if summary.empty:
        return paths
    paths["delta_m_plot"] = _delta_m_figure(out / "delta_m.png", summary, per_run)
    paths["cost_plot"] = _cost_figure(out / "cost.png", summary)
    dynamics = _dynamics_figure(out / "dynamics.png", out)
    if dynamics is not None:
        paths["dynamics_plot"] = dynamics
    return paths


def _delta_m_figure(path: Path, summary: pd.DataFrame, per_run: pd.DataFrame) -> Path:
    import matplotlib.pyplot as plt

    ordered = summary.sort_values("delta_m_mean")["method"].tolist()
    figure, axes = plt.subplots(figsize=(7, 0.35 * len(ordered) + 1.5))
    for position, method in enumerate(ordered):
        seeds = per_run.loc[per_run["method"] == method, "delta_m"]
        axes.barh(position, seeds.mean(), color="tab:blue" if method != "dbmtl" else "tab:red")
        axes.scatter(seeds, [position] * len(seeds), color="black", s=12, zorder=3)
    axes.set_yticks(range(len(ordered)), ordered)
    axes.invert_yaxis()
    axes.axvline(0.0, color="grey", linewidth=0.8)
    axes.set_xlabel("Δm% against our single-task models (lower is better; dots: seeds)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _cost_figure(path: Path, summary: pd.DataFrame) -> Path:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.scatter(summary["seconds_per_epoch"], summary["delta_m_mean"])
    for row in summary.itertuples():
        axes.annotate(row.method, (row.seconds_per_epoch, row.delta_m_mean), fontsize="small")
    axes.set_xlabel("seconds per training epoch (median)")
    axes.set_ylabel("Δm% (mean over seeds)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _dynamics_figure(path: Path, out: Path) -> Path | None:
    """Per-task training loss and shared-gradient norm on the probe batch, ew vs dbmtl."""
    import matplotlib.pyplot as plt

    frames = {}
    for method in DYNAMICS_METHODS:
        runs = sorted((out / "runs" / "mtl" / method).glob(f"seed*/{METRICS_FILE}"))
        if runs:
            frames[method] = pd.read_csv(runs[0])
    if len(frames) < len(DYNAMICS_METHODS):
        return None
    figure, grid = plt.subplots(2, 2, figsize=(11, 7), sharex=True, sharey="row")
    quantities = (
        ("train_loss/", "training loss (standardized MSE)"),
        ("probe_grad_norm/", "‖∇ shared L_t‖ on a fixed batch"),
    )
    for column, (method, frame) in enumerate(frames.items()):
        for row, (prefix, label) in enumerate(quantities):
            axes = grid[row][column]
            axes.set_prop_cycle(color=plt.cm.tab20.colors[::2] + plt.cm.tab20.colors[1::2])
            for name in (c for c in frame.columns if c.startswith(prefix)):
                axes.plot(frame["epoch"], frame[name], label=name.removeprefix(prefix))
            axes.set_yscale("log")
            axes.set_title(f"{method}: {label}", fontsize="medium")
            axes.set_xlabel("epoch")
    grid[0][1].legend(fontsize="x-small", ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
