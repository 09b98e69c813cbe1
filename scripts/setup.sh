#!/usr/bin/env bash
# Create .venv (if missing) and install molmtl with its test extra into it.
# torch is pinned to the local CPU build only when torch is absent: an unpinned torch would
# pull several GB of CUDA packages, while users with a CUDA torch keep theirs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# shellcheck disable=SC1091
source .venv/bin/activate
python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
if ! python -c "import torch" >/dev/null 2>&1; then
    python -m pip install -q --disable-pip-version-check "torch==2.13.0"
fi
python -m pip install -q --disable-pip-version-check -e ".[test${MOLMTL_EXTRAS:+,$MOLMTL_EXTRAS}]"
