from __future__ import annotations

import csv

import pytest

from molmtl.training import plot


def _write_metrics(run_dir, epochs: int) -> None:
    columns = ["epoch", "lr", "train_loss", "val_score", "seconds"] + [
        f"{key}/{task}"
        for key in ("train_loss", "val_mae", "grad_norm", "weight")
        for task in ("mu", "homo")
    ]
    with open(run_dir / "metrics.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        for epoch in range(1, epochs + 1):
            writer.writerow(
                [epoch, 1e-3, 1 / epoch, 1 / epoch, 0.1] + [1 / epoch + i for i in range(8)]
            )


def test_plot_writes_one_png_per_quantity(tmp_path):
    _write_metrics(tmp_path, epochs=5)
    paths = plot(tmp_path)
    assert {p.name for p in paths} == {"loss.png", "grad_norms.png", "val_mae.png", "weights.png"}
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_metrics_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"metrics\.csv"):
        plot(tmp_path)
