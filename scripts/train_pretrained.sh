#!/usr/bin/env bash
# Reproduce the model shipped with molmtl (molmtl/pretrained/qm9-2d-dbmtl, card: docs/pretrained.md):
# train scripts/pretrained/qm9-2d-dbmtl.toml on the full QM9 benchmark split, then package it.
# About 2 hours on a 2-core CPU with one thread. Usage: scripts/train_pretrained.sh [RUN_DIR]
# Data: $MOLMTL_DATA if set, else ../shared/data/qm9 beside the checkout, else the qm9pack package.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/data_env.sh
source scripts/data_env.sh
bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
run_dir="${1:-runs/qm9-2d-dbmtl}"
threads="${MOLMTL_THREADS:-1}"
molmtl train --config scripts/pretrained/qm9-2d-dbmtl.toml --out "$run_dir" --threads "$threads" \
    --no-progress --overwrite
python scripts/package_pretrained.py "$run_dir" --name qm9-2d-dbmtl --threads "$threads"
