"""What the prior costs at inference, in multiply-accumulates, beside the network it conditions.

Counted with `torch.utils.flop_counter` on the `meta` device (no memory, no time), MACs =
FLOPs / 2. The prior's convolutions are all it computes, so the count is the same whichever way
the network's attention matmuls are counted. Inference cost = the LQ encoder at the padded
input size + S denoiser calls at the latent grid + the network's FiLM convs (which exist only
when the network has a prior). The teacher runs only in training and is not counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch.utils.flop_counter import FlopCounterMode

from model.config import SwintormerConfig
from model.prior import LatentPrior, PriorConfig
from model.swintormer import Swintormer

META = torch.device("meta")


@dataclass(frozen=True)
class PriorCost:
    """MACs of one prior-conditioned forward, split by part."""

    parameters: int  # what inference runs: LQ encoder, denoiser and the FiLM convs
    encoder: int  # PriorEncoderLQ on the padded image
    denoiser_step: int  # one LatentDenoiser call on the latent grid
    steps: int  # S, denoiser calls per forward
    film: int  # the network's FiLM convs, z -> (gamma, beta) for four stages

    @property
    def total(self) -> int:
        """All MACs the prior adds to a forward of the plain network."""
        return self.encoder + self.steps * self.denoiser_step + self.film


def count_macs(fn: Callable[[], object]) -> int:
    """MACs (FLOPs / 2, as `torch.utils.flop_counter` counts them) of calling `fn` once."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() // 2


def prior_cost(
    network_config: SwintormerConfig,
    prior_config: PriorConfig,
    h: int,
    w: int,
    steps: int | None = None,
) -> PriorCost:
    """The prior's inference MACs for one h x w image.

    Args:
        network_config: the conditioned network (its padding fixes the latent grid).
        prior_config: the prior.
        h: image height in pixels.
        w: image width in pixels.
        steps: sampling steps S in 1..T (None = T).

    Returns:
        The parameters inference uses, and the MACs split into encoder, per-step denoiser and
        FiLM.
    """
    with META:
        prior = LatentPrior(prior_config)
        network = Swintormer(
            SwintormerConfig.from_dict(
                network_config.to_dict() | {"cond_channels": prior_config.latent_channels}
            )
        )
        h_pad, w_pad = network.padded_size(h, w)
        grid_h, grid_w = network.latent_grid(h, w)
        padded = torch.empty(1, prior_config.in_channels, h_pad, w_pad)
        z = torch.empty(1, prior_config.latent_channels, grid_h, grid_w)
        t = torch.ones(1, dtype=torch.int64)
        film_convs = list(network.film or ())
        film = sum(count_macs(partial(conv, z)) for conv in film_convs)
        inference_modules = (prior.encoder_lq, prior.denoiser, *film_convs)
        return PriorCost(
            parameters=sum(p.numel() for m in inference_modules for p in m.parameters()),
            encoder=count_macs(lambda: prior.encoder_lq(padded)),
            denoiser_step=count_macs(lambda: prior.denoiser(z, z, t)),
            steps=prior_config.steps if steps is None else steps,
            film=film,
        )
