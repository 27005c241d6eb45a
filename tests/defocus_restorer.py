"""A tiny restorer with a defocus front end (`tiny-defocus`), saved as workers load it."""

from __future__ import annotations

from pathlib import Path

import torch

from model.config import model_preset
from model.restorer import build_restorer, save_restorer


def save_tiny_defocus_restorer(path: Path) -> Path:
    """Write a seeded, untrained `tiny-defocus` restorer to `path`; return `path`."""
    torch.manual_seed(0)
    save_restorer(path, build_restorer(model_preset("tiny-defocus")), {"made_by": "tests"})
    return path
