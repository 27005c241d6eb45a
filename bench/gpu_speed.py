"""Tiled-inference throughput and peak device memory, fp32 and bf16; prints a markdown table.

    python -m bench.gpu_speed [--device cuda] [--presets base lite] [--mp 1 4 16] [--compile]

For each preset, image size and precision: one warm-up image, then the median of `--repeats`
timed images (synchronised), megapixels per second and the peak memory the device allocator
saw (`torch.cuda.max_memory_allocated`; on the CPU the column is empty). Weights are random:
throughput does not depend on them. Runs on the CPU too (`--device cpu`) as a smoke test.
`--compile` runs the network through `torch.compile` (the worker's `SWINTORMER_TORCH_COMPILE`);
compiling happens in the untimed warm-up image of each size.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable

import torch

from model.config import PRESETS, preset
from model.devices import PRECISIONS, autocast
from model.swintormer import Swintormer
from model.tiling import TileSettings, restore_tiled


def _float_output(network: Swintormer) -> Callable[[torch.Tensor], torch.Tensor]:
    """The network with float32 output (autocast may hand back bf16)."""

    def restore(tiles: torch.Tensor) -> torch.Tensor:
        return network(tiles).float()

    return restore


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that wall-clock times cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--presets", nargs="+", choices=PRESETS, default=["base", "lite"])
    parser.add_argument("--mp", type=float, nargs="+", default=[1, 4, 16], help="megapixels")
    parser.add_argument(
        "--precisions", nargs="+", choices=tuple(PRECISIONS), default=["fp32", "bf16"]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tile-px", type=int, default=256)
    parser.add_argument("--overlap-px", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16, help="tiles per forward")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    args = parser.parse_args()
    device = torch.device(args.device)
    settings = TileSettings(args.tile_px, args.overlap_px, args.batch)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    compiled = ", torch.compile" if args.compile else ""
    print(f"{name}, torch {torch.__version__}, {settings}{compiled}\n")
    print("| preset | MP | side | precision | median s | MP/s | peak memory MB |")
    print("|---|---|---|---|---|---|---|")
    for preset_name in args.presets:
        config = preset(preset_name)
        torch.manual_seed(0)
        network = Swintormer(config).eval().to(device)
        if args.compile:
            network.compile()
        for megapixels in args.mp:
            side = int(math.sqrt(megapixels * 1e6))
            image = torch.rand(1, config.in_channels, side, side, device=device)
            for precision in args.precisions:
                times = []
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                with torch.inference_mode(), autocast(device, precision):
                    for _ in range(args.repeats + 1):  # the first run is the warm-up
                        sync(device)
                        start = time.perf_counter()
                        restore_tiled(_float_output(network), image, settings)
                        sync(device)
                        times.append(time.perf_counter() - start)
                seconds = statistics.median(times[1:])
                peak = (
                    f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f}"
                    if device.type == "cuda"
                    else ""
                )
                print(
                    f"| {preset_name} | {megapixels:g} | {side} | {precision} | "
                    f"{seconds:.2f} | {side * side / 1e6 / seconds:.2f} | {peak} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
