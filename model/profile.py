"""Size and cost of a Swintormer configuration and its prior: parameters and multiply-accumulates.

Counts come from `torch.utils.flop_counter` on the `meta` device (no memory, no time; on the CPU
the counter would count `scaled_dot_product_attention` as 0, on `meta` every op is seen), one
MAC = 2 FLOPs. The network runs in training mode while counted, so the per-forward work is that
of the released code (which rebuilds the position bias each call; ours caches it in eval mode).

Three totals, because papers disagree on what to count:
    total:       convolutions, linear layers and the attention matmuls (Q K^T, A V).
    conv_linear: convolutions and linear layers only.
    thop:        conv_linear plus 4 per LayerNorm output element, which is how the `thop`
                 package counts; for `paper` at 1x6x256x256 it gives the authors' figure,
                 28,219,645,952, exactly.

The prior's inference cost (`prior_cost`) is counted the same way. Its convolutions are all it
computes, so its count is the same whichever way the network's attention matmuls are counted.
Inference cost = the LQ encoder at the padded input size + S denoiser calls at the latent grid +
the network's FiLM convs (which exist only when the network has a prior). The teacher runs only
in training and is not counted.

The defocus front end (`front_end_cost`): the blur estimator's convolutions are counted the same
way; the Wiener bank is FFTs and pointwise products, which the counter does not see, so their
FLOPs are estimated from the transform sizes (see `FrontEndCost`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from model.config import DefocusConfig, PriorConfig, SwintormerConfig
from model.defocus import DefocusFrontEnd
from model.prior import LatentPrior
from model.psf import fast_fft_length
from model.swintormer import Swintormer

_CONV_LINEAR = (
    torch.ops.aten.convolution,
    torch.ops.aten.mm,
    torch.ops.aten.addmm,
    torch.ops.aten.addmm_,  # project_out's second half accumulates in place; not in torch's table
)
THOP_OPS_PER_LAYERNORM_ELEMENT = 4  # thop: 2 per element for normalising, x2 with an affine
META = torch.device("meta")


def _addmm_flops(
    self_shape: tuple[int, ...], a_shape: tuple[int, ...], b_shape: tuple[int, ...], **_: object
) -> int:
    """FLOPs of (M, K) @ (K, N) accumulated into self: 2 M K N."""
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


@dataclass(frozen=True)
class NetworkProfile:
    """Parameters and MACs of one configuration at one input size (batch 1)."""

    parameters: int
    macs_total: int  # conv + linear + attention matmuls
    macs_conv_linear: int  # conv + linear only
    macs_thop: int  # conv + linear + 4 per LayerNorm element (thop's convention)


def profile_network(config: SwintormerConfig, height: int, width: int) -> NetworkProfile:
    """Count parameters and MACs of `Swintormer(config)` for a 1 x in x height x width input."""
    with META:
        network = Swintormer(config).train()
        image = torch.empty(1, config.in_channels, height, width)
    layernorm_elements = 0

    def count_layernorm(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal layernorm_elements
        layernorm_elements += output.numel()

    hooks = [
        module.register_forward_hook(count_layernorm)
        for module in network.modules()
        if isinstance(module, nn.LayerNorm)
    ]
    in_place = {torch.ops.aten.addmm_: _addmm_flops}
    with FlopCounterMode(display=False, custom_mapping=in_place) as counter:
        network(image)
    for hook in hooks:
        hook.remove()
    flops = counter.get_flop_counts()["Global"]
    conv_linear = sum(flops.get(op, 0) for op in _CONV_LINEAR) // 2
    return NetworkProfile(
        parameters=sum(p.numel() for p in network.parameters()),
        macs_total=sum(flops.values()) // 2,
        macs_conv_linear=conv_linear,
        macs_thop=conv_linear + THOP_OPS_PER_LAYERNORM_ELEMENT * layernorm_elements,
    )


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
            dataclasses.replace(network_config, cond_channels=prior_config.latent_channels)
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


@dataclass(frozen=True)
class FrontEndCost:
    """The defocus front end's size and cost for one image.

    estimator: the blur estimator's MACs (convolutions, counted like the network's).
    bank_fft_flops: the Wiener bank's FFTs, estimated as 2.5 N log2 N real FLOPs per real
        transform of N points (half a complex FFT's 5 N log2 N): one forward transform of the
        padded image, per radius other than 0 an inverse and a forward one for its edge taper,
        and per (radius, regularisation) an inverse one, for each of the three planes the front
        end deconvolves (luminance, red, blue). This is the most it costs: at inference red
        and blue skip the candidates an image does not weight (`model.defocus.SKIP_WEIGHT`).
    bank_pointwise_flops: the spectra's complex multiplications (6 real FLOPs each).
    """

    parameters: int
    estimator: int
    bank_fft_flops: int
    bank_pointwise_flops: int


def front_end_cost(config: DefocusConfig, h: int, w: int) -> FrontEndCost:
    """The defocus front end's parameters and inference cost for one h x w RGB image."""
    with META:
        front = DefocusFrontEnd(config)
        radii, balances = len(config.radii_px), len(config.balances)
        blurry = torch.empty(1, 3, h, w)
        candidates = torch.empty(1, radii, balances, h, w)
        estimator = count_macs(lambda: front.estimator(blurry, candidates))
        parameters = sum(p.numel() for p in front.parameters())
    padded_h = fast_fft_length(h + 2 * config.margin_px)
    padded_w = fast_fft_length(w + 2 * config.margin_px)
    points = padded_h * padded_w
    tapered = sum(1 for radius in config.radii_px if radius > 0)  # r = 0 needs no taper
    transforms = 3 * (1 + 2 * tapered + radii * balances)
    spectrum = padded_h * (padded_w // 2 + 1)
    products = 3 * (tapered + radii * balances)  # taper blur and inverse filters
    return FrontEndCost(
        parameters=parameters,
        estimator=estimator,
        bank_fft_flops=int(transforms * 2.5 * points * math.log2(points)),
        bank_pointwise_flops=6 * products * spectrum,
    )
