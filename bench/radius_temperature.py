"""Which radius temperature a checkpoint should blend with, chosen on training-like pairs.

`DefocusConfig.radius_temperature` divides the blur estimator's radius scores before the softmax
that weights the bank's candidates; below 1 it sharpens the mix towards the most likely radius
(a linear mix of neighbouring radii rings, `bench.bank_ceiling`). It is a setting of the shipped
file, not something training learns, so it is chosen here: on pairs made the way training makes
them from the prepared (training) photos, never the evaluation's photos, so the evaluation sets
stay a test. For each kind of pair (`bench.estimator_bias.kinds`: uniform disks, layered disks,
the training mix) and each temperature, it restores every pair with the whole deployable model
(prior T as trained, the default seed) and prints the mean PSNR (16 px border excluded), the
mean gain over the first temperature and the share of pairs that gained. The rule: the
temperature with the best mean over the three kinds.

    python -m bench.radius_temperature --checkpoint weights/default.safetensors [--pairs 32]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from bench.estimator_bias import kinds
from bench.pair_tables import Variant, gain_cells, mean_of_kinds, pair_scores
from model.data.pairs import DefocusPatches
from model.restorer import Restorer, load_restorer

SEED = 98  # pairs other than bench.estimator_bias's (99) and training's


def rule_pairs(cache: Path, noise_sigma_max: float = 0.02) -> dict[str, DefocusPatches]:
    """The training-like pairs candidates are chosen on, per kind (`bench.estimator_bias.kinds`,
    seed `SEED`), from the prepared photos in `cache`."""
    return {
        name: DefocusPatches.from_cache(cache, settings, seed=SEED)
        for name, settings in kinds(noise_sigma_max).items()
    }


def scores(
    restorer: Restorer, pairs: DefocusPatches, count: int, temperatures: list[float]
) -> np.ndarray:
    """PSNR (dB) of `count` pairs restored at each temperature: (count, len(temperatures))."""
    defocus = restorer.defocus
    if defocus is None:
        raise ValueError("this checkpoint has no defocus front end")
    trained = defocus.config

    def at(temperature: float) -> Variant:
        def restore(image: torch.Tensor) -> torch.Tensor:
            defocus.config = dataclasses.replace(trained, radius_temperature=temperature)
            return restorer.restore(image)

        return restore

    try:
        table, _ = pair_scores(pairs, count, [at(t) for t in temperatures])
    finally:
        defocus.config = trained
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("weights/default.safetensors"))
    parser.add_argument("--cache", type=Path, default=Path("data/cache"))
    parser.add_argument("--pairs", type=int, default=32, help="pairs of 192 px per kind")
    parser.add_argument(
        "--temperature", type=float, action="append", default=[], help="default: 1, 0.5, 0.25"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    temperatures = args.temperature or [1.0, 0.5, 0.25]
    restorer = load_restorer(args.checkpoint).eval()
    print(
        f"{args.checkpoint.name}, {args.pairs} training-like pairs of 192 px per kind, seed {SEED}"
    )
    print()
    header = " | ".join(f"T = {t:g}" for t in temperatures)
    print(f"| PSNR (dB) | {header} |")
    print("|---" + "|---:" * len(temperatures) + "|")
    means = []
    for name, pairs in rule_pairs(args.cache).items():
        table = scores(restorer, pairs, args.pairs, temperatures)
        means.append(table.mean(axis=0))
        cells = gain_cells(table)
        print(f"| {name} | {' | '.join(cells)} |", flush=True)
    row, best = mean_of_kinds(means)
    print(row)
    print()
    print(f"best: T = {temperatures[best]:g}")


if __name__ == "__main__":
    main()
