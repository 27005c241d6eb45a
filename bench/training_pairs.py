"""Throughput of on-the-fly training pairs (`model.data.pairs.DefocusPatches`), one process.

    python -m bench.training_pairs --cache ~/.cache/swintormer [--patch-px 128] [--items 40]

Prints the median milliseconds per pair for each source (photo patches, dead leaves) and
for dual-pixel pairs, measured in the same run; DataLoader workers multiply the rate.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from model.data.pairs import DefocusPatches, PatchSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "swintormer")
    parser.add_argument("--patch-px", type=int, default=128)
    parser.add_argument("--items", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = PatchSettings(patch_px=args.patch_px)
    variants = {
        "photo patches": replace(base, dead_leaves_fraction=0.0),
        "dead leaves": replace(base, dead_leaves_fraction=1.0),
        "photo patches, dual-pixel": replace(base, dead_leaves_fraction=0.0, use_dual_pixel=True),
    }
    print(f"| source ({args.patch_px} px pairs) | median ms / pair | pairs / s |")
    print("|---|---:|---:|")
    for label, settings in variants.items():
        data = DefocusPatches.from_cache(args.cache, settings, seed=0)
        times = []
        for index in range(args.items):
            start = time.perf_counter()
            data[index]
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(f"| {label} | {1000 * median:.0f} | {1 / median:.1f} |")


if __name__ == "__main__":
    main()
