"""Tiny models for the tests: the one place that builds a network, prior, restorer or checkpoint
small enough for seconds on a CPU.

The network is the `tiny` preset (dim 8, window 4, inputs padded to multiples of 64); the prior
is as small as its blocks allow. Tests that need another size say so with the arguments.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from model.config import PriorConfig, SwintormerConfig, preset
from model.prior import LatentPrior
from model.restorer import Restorer, save_restorer
from model.swintormer import Swintormer

TINY_PRIOR = PriorConfig(latent_channels=4, encoder_width=4, denoiser_width=8, denoiser_blocks=1)


def tiny_network_config(cond_channels: int = 0, in_channels: int = 3) -> SwintormerConfig:
    """The `tiny` preset, conditioned on `cond_channels` latent channels (0: no prior)."""
    return dataclasses.replace(preset("tiny"), in_channels=in_channels, cond_channels=cond_channels)


def tiny_network(cond_channels: int = 0, in_channels: int = 3) -> Swintormer:
    """A freshly initialised `tiny_network_config` network (training mode)."""
    return Swintormer(tiny_network_config(cond_channels, in_channels))


def tiny_restorer(
    with_prior: bool = True, in_channels: int = 3, prior: PriorConfig = TINY_PRIOR
) -> Restorer:
    """A tiny network, with `prior` (its `in_channels` set to the network's) or without one."""
    if not with_prior:
        return Restorer(tiny_network(0, in_channels), None)
    prior = dataclasses.replace(prior, in_channels=in_channels)
    return Restorer(tiny_network(prior.latent_channels, in_channels), LatentPrior(prior))


def save_tiny_checkpoint(
    path: Path,
    with_prior: bool = True,
    in_channels: int = 3,
    prior: PriorConfig = TINY_PRIOR,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Save a `tiny_restorer` (seeded by the caller's torch RNG) where the worker loads it."""
    save_restorer(path, tiny_restorer(with_prior, in_channels, prior), provenance=provenance)
    return path
