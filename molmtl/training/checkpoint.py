"""Per-epoch checkpoints: everything needed to continue a run bit-for-bit.

The file holds only tensors, numbers, strings and containers of them, so it is read back with
``torch.load(weights_only=True)`` like the model weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from molmtl.rundir import CHECKPOINT_FILE, atomic_torch_save

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


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """Write ``checkpoint.pt`` atomically (a killed run keeps the previous epoch's)."""
    atomic_torch_save({"version": CHECKPOINT_VERSION, **state}, run_dir / CHECKPOINT_FILE)


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """Read ``checkpoint.pt`` of ``run_dir`` onto the CPU (``load_state_dict`` calls move the
    model, optimizer and balancer states to their parameters' device; RNG states stay here)."""
    path = run_dir / CHECKPOINT_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"cannot resume: {path} does not exist (the run never finished an epoch)"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path}: checkpoint version {state.get('version')!r}, this molmtl reads {CHECKPOINT_VERSION}"
        )
    return state
