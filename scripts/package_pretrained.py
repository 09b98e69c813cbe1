"""Copy a finished run into molmtl/pretrained/NAME as a shipped model, with its model card facts.

    python scripts/package_pretrained.py runs/qm9-2d-dbmtl --name qm9-2d-dbmtl

Writes ``config.json`` and ``model.pt`` (through ``save_model``, so they are exactly what
``load_model`` reads; paths of the training machine are dropped), ``card.json`` (data, split,
training, test MAE per target against the published single-task references, time, hardware)
and rewrites ``molmtl/pretrained/_checksums.py`` with the SHA-256 of every shipped file.
scripts/train_pretrained.sh runs this after training.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import torch

import molmtl
from molmtl.models import load_model, save_model
from molmtl.rundir import RunDir, atomic_write_text, sha256_of

PACKAGE = Path(molmtl.__file__).parent / "pretrained"
DOC = Path(__file__).resolve().parents[1] / "docs" / "pretrained.md"
START, END = "<!-- card:start -->\n", "<!-- card:end -->"
#: settings that describe the training machine, not the model
MACHINE_SETTINGS = ("data", "out", "cache_dir", "progress", "device")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished run directory")
    parser.add_argument("--name", default="qm9-2d-dbmtl", help="shipped model name (folder)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads the run trained with")
    parser.add_argument(
        "--training-commit", default=None, help="git commit the run trained with (default: HEAD)"
    )
    args = parser.parse_args()
    run = RunDir(args.run_dir)
    model, config = load_model(args.run_dir)
    destination = PACKAGE / args.name
    metadata = {
        key: value
        for key, value in config.items()
        if key not in ("format_version", "molmtl_version", "model", "weights", "settings_sha256")
    }
    metadata["train"] = {
        key: (None if key in MACHINE_SETTINGS else value) for key, value in config["train"].items()
    }
    save_model(destination, model, metadata)
    card = model_card(args.name, run, config, args.threads)
    card["software"]["commit"] = args.training_commit or card["software"]["commit"]
    atomic_write_text(destination / "card.json", json.dumps(card, indent=2) + "\n")
    write_checksums()
    write_docs_table(card)
    print(card_markdown(card))


def model_card(name: str, run: RunDir, config: dict, threads: int) -> dict:
    """The facts of the model card, from the run's own files."""
    test = run.read_test_metrics()
    train = config["train"]
    splits = run.read_splits()
    with open(run.metrics_path, newline="") as file:
        rows = list(csv.DictReader(file))
    references = train.get("reference_maes") or {}
    return {
        "name": name,
        "data": f"QM9 (Ramakrishnan et al. 2014): {sum(len(splits[p]) for p in ('train', 'val', 'test')):,} molecules"
        + (f" (random subset of {train['n_molecules']:,})" if train.get("n_molecules") else ""),
        "split": {
            "kind": train["split"],
            "sizes": {part: len(splits[part]) for part in ("train", "val", "test")},
            "seed": train["seed"],
        },
        "featurizer": config["featurizer"]["name"],
        "model": config["model"],
        "balancer": {"name": train["balancer"], "options": train["balancer_options"]},
        "optimizer": {
            key: train[key]
            for key in ("batch_size", "lr", "lr_factor", "lr_patience", "min_lr", "weight_decay")
        },
        "epochs": len(rows),
        "selected_epoch": test["best_epoch"],
        "selection": "the epoch with the best validation Δm% against the references below",
        "test": {
            "n_molecules": test["n_molecules"],
            "delta_m_percent": test["delta_m_percent"],
            "mae": test["mae"],
            "units": test["units"],
            "single_task_reference_mae": references,
            "reference_source": "Navon et al. 2022 (Nash-MTL), STL row, 3D MPNN, 300 epochs",
        },
        "training_seconds": round(sum(float(row["seconds"]) for row in rows), 1),
        "hardware": hardware(threads),
        "software": {
            "molmtl": molmtl.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "commit": git_commit(),
        },
        "packaged": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def card_markdown(card: dict) -> str:
    """The card's test results and training facts as the Markdown block of docs/pretrained.md."""
    test = card["test"]
    lines = [
        f"Test split: {test['n_molecules']:,} molecules; Δm% against the single-task references: "
        f"**{test['delta_m_percent']:+.1f}** (0 = as good as one published 3D model per target).",
        "",
        "| target | unit | test MAE | single-task reference MAE | ratio |",
        "|---|---|---|---|---|",
    ]
    for target, mae in test["mae"].items():
        reference = test["single_task_reference_mae"].get(target)
        ratio = f"{mae / reference:.2f}" if reference else ""
        lines.append(f"| {target} | {test['units'][target]} | {mae:.4g} | {reference} | {ratio} |")
    minutes = card["training_seconds"] / 60
    lines += [
        "",
        f"Trained {card['epochs']} epochs (selected: epoch {card['selected_epoch']}) in "
        f"{minutes:.0f} min on {card['hardware']}; molmtl {card['software']['molmtl']}, "
        f"torch {card['software']['torch']}, commit {card['software']['commit']}.",
    ]
    return "\n".join(lines) + "\n"


def write_docs_table(card: dict) -> None:
    """Replace the block between the card markers of docs/pretrained.md with this card's."""
    text = DOC.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{DOC} lacks the {START.strip()} / {END} markers")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    atomic_write_text(DOC, head + START + card_markdown(card) + END + tail)


def hardware(threads: int) -> str:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {len(os.sched_getaffinity(0))} cores, trained with {threads} thread(s)"


def git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip()


def write_checksums() -> None:
    """Rewrite ``_checksums.py`` from the files of every model folder in the package."""
    lines = [
        '"""SHA-256 of every file of every shipped model: written by scripts/package_pretrained.py."""',
        "",
        "SHA256: dict[str, dict[str, str]] = {",
    ]
    for folder in sorted(p for p in PACKAGE.iterdir() if (p / "config.json").is_file()):
        lines.append(f'    "{folder.name}": {{')
        for file in sorted(f for f in folder.iterdir() if f.is_file()):
            lines.append(f'        "{file.name}": "{sha256_of(file)}",')
        lines.append("    },")
    lines.append("}")
    atomic_write_text(PACKAGE / "_checksums.py", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
