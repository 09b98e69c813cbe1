"""Per-epoch checkpoints: everything needed to continue a run bit-for-bit.

The file holds only tensors, numbers, strings and containers of them, so it is read back with
``torch.load(weights_only=True)`` like the model weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from molmtl.rundir import CHECKPOINT_FILE, RunDirError, atomic_torch_save

CHECKPOINT_VERSION = 1


def rng_state(shuffle_generator: torch.Generator) -> dict[str, Any]:
    """States of the generators a run draws from: the global CPU one (initialisation, dropout,
    random-weight balancers), CUDA's, and the generator that shuffles the training set."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state(), "shuffle": shuffle_generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], shuffle_generator: torch.Generator) -> None:
    torch.set_rng_state(state["cpu"])
    shuffle_generator.set_state(state["shuffle"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


#: the entries of a checkpoint besides its version
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "balancer", "rng", "run")


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """Write ``checkpoint.pt`` atomically (a killed run keeps the previous epoch's).

    Raises:
        RunDirError: the write failed (e.g. a full disk); the previous checkpoint is intact.
    """
    path = run_dir / CHECKPOINT_FILE
    try:
        atomic_torch_save({"version": CHECKPOINT_VERSION, **state}, path)
    except OSError as error:
        raise RunDirError(
            f"cannot write {path}: {error.strerror or error}; the previous checkpoint is "
            "intact, so `molmtl train --resume` continues from it once this is fixed"
        ) from error


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """Read ``checkpoint.pt`` of ``run_dir`` onto the CPU (``load_state_dict`` calls move the
    model, optimizer and balancer states to their parameters' device; RNG states stay here).

    Raises:
        RunDirError: the file is missing, unreadable, or not a checkpoint of this version.
    """
    path = run_dir / CHECKPOINT_FILE
    if not path.is_file():
        raise RunDirError(f"cannot resume: {path} does not exist (the run never began)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged archive raises many kinds; none of them is ours
        raise RunDirError(f"{path} is not a molmtl checkpoint ({error})"[:400]) from error
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        version = state.get("version") if isinstance(state, dict) else None
        raise RunDirError(
            f"{path}: checkpoint version {version!r}, this molmtl reads {CHECKPOINT_VERSION}"
        )
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise RunDirError(f"{path} lacks {missing}: it is damaged or not a molmtl checkpoint")
    return state
