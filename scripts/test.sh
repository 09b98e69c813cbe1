#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the linter and the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
ruff check molmtl tests scripts
ruff format --check molmtl tests scripts
python -m pytest -q "$@"
