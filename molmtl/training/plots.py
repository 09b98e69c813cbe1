"""``plot(run_dir)``: PNG figures of a run's training dynamics from its ``metrics.csv``."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

#: figure file → (metrics.csv column prefix, y-axis label, log scale)
FIGURES: dict[str, tuple[str, str, bool]] = {
    "loss.png": ("train_loss", "training loss (standardized MSE)", True),
    "grad_norms.png": ("grad_norm", "shared-gradient norm", True),
    "val_mae.png": ("val_mae", "validation MAE", True),
    "weights.png": ("weight", "task weight", False),
}


def plot(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Draw one figure per quantity (one line per task) and return the PNG paths.

    Args:
        run_dir: a run directory with ``metrics.csv``.
        out_dir: where to write the PNGs (default: ``run_dir/plots``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.csv"
    if not metrics_path.is_file():
        raise FileNotFoundError(
            f"{metrics_path} does not exist: is {run_dir} a molmtl run directory?"
        )
    with open(metrics_path, newline="") as file:
        rows = list(csv.DictReader(file))
    if not rows:
        raise ValueError(f"{metrics_path} has no epochs yet")
    units = _units(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    epochs = [int(row["epoch"]) for row in rows]
    written = []
    for filename, (prefix, label, log_scale) in FIGURES.items():
        columns = [c for c in rows[0] if c.startswith(prefix + "/")]
        figure, axes = plt.subplots(figsize=(7, 4.5))
        # the default cycle has 10 colours; QM9 has 11 tasks
        axes.set_prop_cycle(color=plt.cm.tab20.colors[::2] + plt.cm.tab20.colors[1::2])
        for column in columns:
            task = column.split("/", 1)[1]
            values = [_number(row[column]) for row in rows]
            if prefix == "val_mae":
                # tasks have different units: plot relative to the first epoch to share one axis
                first = next((v for v in values if math.isfinite(v) and v > 0), float("nan"))
                values = [v / first for v in values]
                task = f"{task} ({units.get(task, '')})"
            axes.plot(epochs, values, label=task, marker="." if len(epochs) < 30 else None)
        if prefix == "val_mae":
            label = "validation MAE / first-epoch MAE"
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        if log_scale:
            axes.set_yscale("log")
        axes.legend(fontsize="small", ncol=2)
        axes.set_title(run_dir.name)
        figure.tight_layout()
        path = out_dir / filename
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)
    return written


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _units(run_dir: Path) -> dict[str, str]:
    path = run_dir / "test_metrics.json"
    if path.is_file():
        return json.loads(path.read_text()).get("units", {})
    return {}
