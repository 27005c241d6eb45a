"""`swintormer convert`: import a checkpoint trained with the released code into our format."""

from __future__ import annotations

import argparse
from pathlib import Path

from model.checkpoint import (
    CheckpointError,
    file_sha256,
    network_from_state_dict,
)
from model.config import PRESETS, preset
from model.released import convert_released
from model.restorer import Restorer, save_restorer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `swintormer convert`."""
    parser.add_argument("released", type=Path, help="BasicSR .pth checkpoint of the released code")
    parser.add_argument("output", type=Path, help="safetensors checkpoint to write")
    parser.add_argument(
        "--ema", action="store_true", help="take 'params_ema' (the EMA weights) over 'params'"
    )
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default="paper",
        help="architecture the weights were trained with (window sizes are not in the weights)",
    )


def run(args: argparse.Namespace) -> int:
    """Convert, check every key and shape against the preset, write; 1 on a bad checkpoint."""
    try:
        state = convert_released(args.released, ema=args.ema)
        network = network_from_state_dict(state, preset(args.preset), what=str(args.released))
    except CheckpointError as error:
        print(f"swintormer convert: {error}")
        return 1
    provenance = {
        "converted_from": args.released.name,
        "source_sha256": file_sha256(args.released),
        "weights": "params_ema" if args.ema else "params",
        "preset": args.preset,
    }
    save_restorer(args.output, Restorer(network, None), provenance=provenance)
    count = sum(p.numel() for p in network.parameters())
    print(f"wrote {args.output}: {len(state)} tensors, {count:,} parameters ({args.preset})")
    return 0
