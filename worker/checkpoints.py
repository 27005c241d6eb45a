"""Which checkpoint a worker loads: the configured one, else the shipped default.

Torch-free, so `python -m worker` can refuse to start with a clear message before it spends
seconds importing torch.
"""

from __future__ import annotations

from pathlib import Path

from model.weights import default_checkpoint
from service.config import Settings


class CheckpointMissingError(RuntimeError):
    """No checkpoint configured and none shipped, or the configured one is missing."""


def resolve_checkpoint(settings: Settings) -> Path:
    """The configured checkpoint, else the shipped default; a clear error when neither exists."""
    if settings.checkpoint is not None:
        if not settings.checkpoint.is_file():
            raise CheckpointMissingError(
                f"SWINTORMER_CHECKPOINT={settings.checkpoint} does not exist or is not a file"
            )
        return settings.checkpoint
    shipped = default_checkpoint()
    if shipped is None:
        raise CheckpointMissingError(
            "no model checkpoint: this tree ships no weights/default.safetensors. Set "
            "SWINTORMER_CHECKPOINT=/path/to/checkpoint.safetensors (a file written by "
            "`swintormer train` or converted with `swintormer convert`)"
        )
    return shipped
