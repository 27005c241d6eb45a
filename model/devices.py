"""Turning a device name from a setting or a flag into a `torch.device`, checked."""

from __future__ import annotations

import torch


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
