"""Where the shipped weights live: `weights/default.safetensors` beside the `model` package.

The training issue commits the default checkpoint there (with its model card); the worker and
`swintormer deblur` fall back to it when no checkpoint is given. Nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_CHECKPOINT_NAME = "default.safetensors"


def default_checkpoint(weights_dir: Path = WEIGHTS_DIR) -> Path | None:
    """The shipped default checkpoint, or None when this tree ships none.

    Args:
        weights_dir: where to look (the repository's `weights/` unless a test says otherwise).

    Returns:
        `weights_dir / "default.safetensors"` if that file exists, else None.
    """
    path = weights_dir / DEFAULT_CHECKPOINT_NAME
    return path if path.is_file() else None
