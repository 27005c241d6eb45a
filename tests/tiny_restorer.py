"""A tiny restorer (the `tiny` network with a tiny diffusion prior) saved as workers load it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from model.config import PriorConfig, preset
from model.prior import LatentPrior
from model.restorer import Restorer, save_restorer
from model.swintormer import Swintormer

LATENT_CHANNELS = 4


def save_tiny_restorer(path: Path) -> Path:
    """Write a seeded, untrained `tiny` restorer with a 2-step prior to `path`; return `path`."""
    torch.manual_seed(0)
    network = Swintormer(replace(preset("tiny"), cond_channels=LATENT_CHANNELS))
    prior = LatentPrior(
        PriorConfig(
            latent_channels=LATENT_CHANNELS,
            encoder_width=4,
            denoiser_width=8,
            denoiser_blocks=1,
            steps=2,
        )
    )
    save_restorer(path, Restorer(network, prior), provenance={"made_by": "tests"})
    return path
