#!/usr/bin/env bash
# Set up, train the qm9-quick preset on QM9, then predict properties for a few SMILES.
# Data: $MOLMTL_DATA if set, else ../shared/data/qm9 beside the checkout, else the qm9pack package
# (installed here through the `qm9` extra).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/data_env.sh
source scripts/data_env.sh
bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
run_dir="${1:-runs/qm9-quick}"
molmtl train --preset qm9-quick --overwrite --out "$run_dir"
molmtl predict --model "$run_dir" CCO c1ccccc1 "CC(=O)O" "not-a-smiles" "[Na+].[Cl-]"
