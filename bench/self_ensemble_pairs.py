"""What the self-ensemble gains on training-like pairs, and what it costs.

The evaluation photos measured `model.self_ensemble` (+0.08 dB uniform, +0.10 dB layered at 8
copies, weights/LITE_DEFOCUS_CARD.md); their blur is exact disks. This restores pairs made the
way training makes them from the prepared (training) photos (`bench.estimator_bias.kinds`:
uniform disks, layered disks, the training mix with lens-shaped kernels and dead leaves; the
same pairs as `bench.radius_temperature`), once per ensemble size, each copy through the whole
deployable model as a worker runs it, and prints the mean PSNR (dB) per kind, the gain over one
copy, the share of pairs that gained, and the median time per pair against one copy.

    python -m bench.self_ensemble_pairs --checkpoint weights/default.safetensors [--pairs 32] \\
        [--sizes 1 4 8] [--kind 0 1 2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from bench.estimator_bias import kinds
from bench.pair_tables import Variant, gain_cells, mean_of_kinds, pair_scores
from bench.radius_temperature import SEED
from model.data.pairs import DefocusPatches
from model.restorer import Restorer, load_restorer
from model.self_ensemble import self_ensemble


def ensembles(restorer: Restorer, sizes: list[int]) -> list[Variant]:
    """The deployed restoration averaged over `size` flipped and turned copies, per size."""

    def restored(tiles: torch.Tensor) -> torch.Tensor:
        return restorer.run(tiles).restored

    return [self_ensemble(restored, size) for size in sizes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("weights/default.safetensors"))
    parser.add_argument("--cache", type=Path, default=Path("data/cache"))
    parser.add_argument("--pairs", type=int, default=32, help="pairs of 192 px per kind")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 8], help="copies")
    parser.add_argument("--kind", type=int, nargs="+", default=[0, 1, 2], help="kinds to run")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    restorer = load_restorer(args.checkpoint).eval()
    print(
        f"{args.checkpoint.name}, {args.pairs} training-like pairs of 192 px per kind, seed {SEED}"
    )
    print()
    labels = [f"x{size}" for size in args.sizes]
    print(f"| PSNR (dB) | {' | '.join(labels)} | time per pair against x{args.sizes[0]} |")
    print("|---" + "|---:" * (len(labels) + 1) + "|")
    means = []
    for kind, (name, settings) in enumerate(kinds().items()):
        if kind not in args.kind:
            continue
        pairs = DefocusPatches.from_cache(args.cache, settings, seed=SEED)
        quality, seconds = pair_scores(pairs, args.pairs, ensembles(restorer, args.sizes))
        means.append(quality.mean(axis=0))
        medians = np.median(seconds, axis=0)
        times = ", ".join(f"{t / medians[0]:.1f}x" for t in medians)
        print(f"| {name} | {' | '.join(gain_cells(quality))} | {times} |", flush=True)
    row, _ = mean_of_kinds(means)
    print(f"{row} |")


if __name__ == "__main__":
    main()
