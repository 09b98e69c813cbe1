"""Scale-free arithmetic on per-task gradient rows: norms and Gram matrices that neither
overflow nor underflow for gradients anywhere in their dtype's range.

Where the plain computation is safe (no square overflows, none that matters underflows) its
result is used as it is, so at ordinary scales nothing changes, bit for bit. Elsewhere each row
is divided by a power of two near its largest entry before squares or products are formed, and
the result is scaled back; multiplying by a power of two is exact. On the CPU the choice is a
free host check; on accelerators both are computed and selected on the device (no sync).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a method computes in for tensors of ``dtype``: at least float32.

    bfloat16 and float16 carry 2-3 significant digits, too few for the methods' own state
    (an Adam step of 1e-3 on a bfloat16 log-variance near 0.5 rounds away).
    """
    return torch.promote_types(dtype, torch.float32)


def plain_is_exact(norms: Tensor, dtype: torch.dtype) -> Tensor:
    """``[T]`` bool: whether rows of these plain ``norms`` (computed in ``dtype``) are safe.

    A finite norm means no square overflowed; a norm of at least ``sqrt(tiny) / eps`` means the
    squares that underflowed (each below ``tiny``) are far below the rounding of the sum.
    """
    info = torch.finfo(dtype)
    return torch.isfinite(norms) & (norms >= math.sqrt(info.tiny) / info.eps)


def all_on_host(flags: Tensor) -> bool:
    """Whether every flag is True, read on the host only where that is free (the CPU)."""
    return flags.device.type == "cpu" and bool(flags.all())


def row_scales(rows: Tensor) -> Tensor:
    """``[T]`` powers of two (in ``rows``' dtype) near the largest ``|entry|`` of each row of
    ``rows`` ``[T, P]``; 1 for an all-zero row."""
    rows = rows.detach()
    largest = torch.maximum(rows.amax(dim=1), -rows.amin(dim=1)).to(compute_dtype(rows.dtype))
    _, exponent = torch.frexp(largest)
    # Scales a little inside the dtype's normal range, so that they are exact in it.
    info = torch.finfo(rows.dtype)
    exponent = exponent.clamp(math.ceil(math.log2(info.tiny)) + 4, int(math.log2(info.max)) - 4)
    return torch.ldexp(torch.ones_like(largest), exponent).to(rows.dtype)


def scaled_rows(rows: Tensor) -> tuple[Tensor, Tensor]:
    """``rows`` ``[T, P]`` with each row divided by its :func:`row_scales` (entries below 1 in
    magnitude), and the ``[T]`` float64 scales."""
    scales = row_scales(rows)
    return rows / scales[:, None], scales.to(torch.float64)


def row_norms(rows: Tensor, *, keepdim: bool = False) -> Tensor:
    """``[T]`` Euclidean norms of the rows of ``rows`` ``[T, P]`` (``[T, 1]`` with ``keepdim``),
    in ``rows``' dtype, without overflow or underflow of the squares; NaN or inf exactly for
    the rows that hold a NaN or inf (or whose norm exceeds the dtype)."""
    norms = rows.norm(dim=1)
    exact = plain_is_exact(norms, rows.dtype)
    if not all_on_host(exact):
        scales = row_scales(rows)
        norms = torch.where(exact, norms, (rows / scales[:, None]).norm(dim=1) * scales)
    return norms[:, None] if keepdim else norms


def all_finite(tensors: list[Tensor]) -> Tensor:
    """0-d bool: whether every entry of every tensor is finite (no NaN, no ±inf).

    On the CPU the sums decide first (NaN and inf reach them; ten times cheaper than a full
    check) and only a non-finite sum, which large finite entries can also give, is checked
    entry by entry.
    """
    on_cpu = bool(tensors) and tensors[0].device.type == "cpu"
    if on_cpu and all(bool(torch.isfinite(tensor.sum())) for tensor in tensors):
        return torch.tensor(True)
    return torch.stack([torch.isfinite(tensor).all() for tensor in tensors]).all()
