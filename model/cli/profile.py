"""`swintormer profile`: parameters and GMACs of a preset, and its diffusion prior's share."""

from __future__ import annotations

import argparse

from model.config import PRESETS, DefocusConfig, PriorConfig, preset
from model.profile import front_end_cost, prior_cost, profile_network


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `swintormer profile`."""
    parser.add_argument("--preset", choices=PRESETS, default="paper", help="network preset")
    parser.add_argument(
        "--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"), help="input size"
    )
    parser.add_argument(
        "--prior-steps",
        type=_non_negative,
        default=PriorConfig().steps,
        metavar="T",
        help="diffusion steps of the default prior to add (0: network only)",
    )
    parser.add_argument(
        "--defocus",
        action="store_true",
        help="add the default defocus front end (Wiener bank + blur estimator) on an RGB image",
    )


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    """Print the counts as a small table."""
    config = preset(args.preset)
    height, width = args.size
    counts = profile_network(config, height, width)
    print(f"preset {args.preset}, input 1x{config.in_channels}x{height}x{width}")
    print(f"  parameters                        {counts.parameters:>16,}")
    print(f"  GMAC with attention matmuls       {counts.macs_total / 1e9:>16.3f}")
    print(f"  GMAC conv/linear only             {counts.macs_conv_linear / 1e9:>16.3f}")
    print(f"  GMAC thop-style (+4/LayerNorm el) {counts.macs_thop / 1e9:>16.3f}")
    if args.prior_steps > 0:
        prior = PriorConfig(in_channels=config.in_channels, steps=args.prior_steps)
        cost = prior_cost(config, prior, height, width)
        denoiser = f"GMAC denoiser, {cost.steps} steps"
        print(f"prior, T={prior.steps}, Cz={prior.latent_channels} (what inference runs)")
        print(f"  {'parameters (LQ enc, denoiser, FiLM)':<34}{cost.parameters:>16,}")
        print(f"  {'GMAC LQ encoder':<34}{cost.encoder / 1e9:>16.3f}")
        print(f"  {denoiser:<34}{cost.steps * cost.denoiser_step / 1e9:>16.3f}")
        print(f"  {'GMAC FiLM':<34}{cost.film / 1e9:>16.3f}")
        print(f"  {'GMAC prior total':<34}{cost.total / 1e9:>16.3f}")
        for label, macs in (
            ("attention", counts.macs_total),
            ("conv/linear", counts.macs_conv_linear),
        ):
            share = f"share of the network ({label})"
            print(f"  {share:<34}{100 * cost.total / macs:>15.1f}%")
    if args.defocus:
        front = front_end_cost(DefocusConfig(), height, width)
        bank = (front.bank_fft_flops + front.bank_pointwise_flops) / 2
        print("defocus front end (on the RGB image; the network then reads 6 channels)")
        print(f"  {'parameters (estimator)':<34}{front.parameters:>16,}")
        print(f"  {'GMAC estimator':<34}{front.estimator / 1e9:>16.3f}")
        print(f"  {'GFLOP bank FFTs (estimated)':<34}{front.bank_fft_flops / 1e9:>16.3f}")
        print(f"  {'GFLOP bank products':<34}{front.bank_pointwise_flops / 1e9:>16.3f}")
        share = "share of the network (attention)"
        print(f"  {share:<34}{100 * (front.estimator + bank) / counts.macs_total:>15.1f}%")
    return 0
