"""`swintormer profile`: parameters and GMACs of a preset at an input size."""

from __future__ import annotations

import argparse

from model.config import PRESETS, preset
from model.profile import profile_network


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `swintormer profile`."""
    parser.add_argument("--preset", choices=PRESETS, default="paper", help="network preset")
    parser.add_argument(
        "--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"), help="input size"
    )


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
    return 0
