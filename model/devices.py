"""Devices and precisions: a device name from a setting or a flag as a checked `torch.device`,
the autocast context of a precision name, and CUDA's TF32 switch for float32 work."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

# precision name -> autocast dtype (None: plain float32)
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def resolve_device(
    name: str, worker_index: int = 0, cuda_devices: Sequence[int] = ()
) -> torch.device:
    """A device name as a checked `torch.device`; several workers spread over the GPUs.

    `"auto"` is CUDA when there is a GPU, else the CPU. `"auto"` and `"cuda"` (no index) give
    worker `worker_index` the GPU `cuda_devices[worker_index % len(cuda_devices)]`, or
    `cuda:(worker_index % device_count)` when the list is empty: N workers on a host with G
    GPUs take them in turn. An explicit `"cuda:N"` (or any other name) is taken as given.

    Raises:
        ValueError: the name is not a torch device, names CUDA where none is available, or
            `cuda_devices` names a GPU this process cannot see.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"device {name!r} is not a torch device: {error}") from error
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available")
    count = torch.cuda.device_count()
    requested: int | None = device.index  # None for plain "cuda"
    if requested is None:
        index = cuda_devices[worker_index % len(cuda_devices)] if cuda_devices else None
        device = torch.device("cuda", worker_index % count if index is None else index)
    if not 0 <= (device.index or 0) < count:
        raise ValueError(f"device {device} asked for, but this process sees {count} GPU(s)")
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
