"""Choosing the torch device, shared by training and prediction."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None, *, use: str = "molmtl") -> torch.device:
    """``None`` or ``"auto"`` → CUDA when available, else CPU; otherwise the named device.

    Args:
        use: what the device is for, in messages (``"training"``, ``"prediction"``).

    Raises:
        ValueError: the name is not a torch device, is not a CPU or CUDA device (``meta``,
            ``mps``), names CUDA on a machine without it, or a CUDA index the machine lacks.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as error:
        raise ValueError(
            f"unknown device {str(device)!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from error
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(
            f"device {str(device)!r} is not supported for {use}: use 'cpu', 'cuda' or 'cuda:N'"
        )
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {str(device)!r} asked for, but CUDA is not available here; use 'cpu' or 'auto'"
        )
    count = torch.cuda.device_count() if resolved.type == "cuda" else 0
    if resolved.type == "cuda" and (resolved.index or 0) >= count:
        raise ValueError(
            f"device {str(device)!r} does not exist: this machine has {count} CUDA device(s), "
            f"cuda:0 to cuda:{count - 1}"
        )
    return resolved
