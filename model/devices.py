"""Devices and precisions: a device name from a setting or a flag as a checked `torch.device`,
the autocast context of a precision name, and CUDA's TF32 switch for float32 work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

# precision name -> autocast dtype (None: plain float32)
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def resolve_device(name: str) -> torch.device:
    """`"auto"` -> the first CUDA device when there is one, else the CPU; other names as given.

    Raises:
        ValueError: the name is not a torch device, or names CUDA where none is available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"device {name!r} is not a torch device: {error}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available")
    return device


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    """Mixed precision on `device`: nothing for "fp32", `torch.autocast` for "bf16"/"fp16".

    Callers that keep the CPU in float32 whatever the setting (the worker, training) pass
    "fp32" for it; this function applies what it is given.

    Raises:
        ValueError: an unknown precision name.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def set_tf32(enabled: bool) -> None:
    """Let CUDA run float32 matmuls and convolutions on TF32 tensor cores (10-bit mantissa
    products, float32 accumulation), or not.

    Process-wide. Sets the flags `torch.backends.cuda.matmul.allow_tf32` and
    `torch.backends.cudnn.allow_tf32` (torch 2.13 raises when its newer `fp32_precision` API
    and these are mixed, and compile's own code still reads these).
    """
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def is_tf32_enabled() -> bool:
    """Whether float32 matmuls (and convolutions) may run in TF32 on CUDA."""
    return bool(torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32)


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """Float32 work in full float32 (no TF32) inside the block; the previous flags after it."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    set_tf32(False)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn
