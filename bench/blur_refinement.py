"""Which re-blur window, sharpness and reliable range the blur refinement should use, chosen
on training-like pairs.

`model.reblur.radius_evidence` turns a first restoration into evidence on the bank radii (the
disk that re-blurs the restoration into the input best, per window of `WINDOW_CELLS`, weighted by
`SHARPNESS`, telling radii apart only below `RELIABLE_BELOW_PX`); the front end adds it to the
estimator's radius scores for a second pass. The three are constants of the method, chosen here
on pairs made the way training makes them from the prepared (training) photos, never the
evaluation's photos (`bench.estimator_bias.kinds`: uniform disks, layered disks, the training
mix; 192 px). For every pair it restores once as deployed without refinement (the first pass,
"off"), then once more per (window, sharpness, reliable range) with the evidence added, and
prints the mean PSNR (dB) per kind, the gain over "off", the share of pairs that gained, and the
radius map's mean absolute error against the true one (px). The rule: the best mean over the
three kinds.

    python -m bench.blur_refinement --checkpoint weights/default.safetensors [--pairs 32] \\
        [--window 7 15] [--sharpness 1 4] [--reliable-below 4.1 5.2]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch

from bench.estimator_bias import kinds
from bench.pair_tables import gain_cells, mean_of_kinds
from model.data.pairs import DefocusPatches
from model.evaluation.metrics import psnr
from model.reblur import radius_evidence
from model.restorer import Restorer, load_restorer

SEED = 97  # pairs other than bench.radius_temperature's (98), bench.estimator_bias's (99)


Variant = tuple[int, float, float]  # (window cells, sharpness, reliable below px)


def scores(
    restorer: Restorer, pairs: DefocusPatches, count: int, variants: list[Variant]
) -> tuple[np.ndarray, np.ndarray]:
    """PSNR (dB) and radius error (px) of `count` pairs: first pass, then each variant; both
    (count, 1 + len(variants))."""
    defocus = restorer.defocus
    if defocus is None:
        raise ValueError("this checkpoint has no defocus front end")
    quality = np.zeros((count, 1 + len(variants)))
    error = np.zeros_like(quality)
    for index in range(count):
        blurry, sharp, radius_map = pairs.pair(index)
        image = torch.from_numpy(blurry).permute(2, 0, 1)[None]  # (1, 3, p, p)
        with torch.inference_mode():
            first = restorer.run(image)
            runs = [first]
            for window, sharpness, reliable_below in variants:
                evidence = radius_evidence(
                    first.restored,
                    image,
                    defocus.config.radii_px,
                    sharpness,
                    window,
                    reliable_below,
                )
                runs.append(restorer.run(image, front=defocus(image, radius_evidence=evidence)))
        for column, run in enumerate(runs):
            assert run.radius_px is not None
            quality[index, column] = psnr(run.restored[0].permute(1, 2, 0).numpy(), sharp)
            error[index, column] = float(np.abs(run.radius_px[0, 0].numpy() - radius_map).mean())
    return quality, error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("weights/default.safetensors"))
    parser.add_argument("--cache", type=Path, default=Path("data/cache"))
    parser.add_argument("--pairs", type=int, default=32, help="pairs of 192 px per kind")
    parser.add_argument("--window", type=int, nargs="+", default=[7, 15], help="cells")
    parser.add_argument("--sharpness", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--reliable-below", type=float, nargs="+", default=[5.2], help="px")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kind", type=int, nargs="+", default=[0, 1, 2], help="kinds to run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = list(itertools.product(args.window, args.sharpness, args.reliable_below))
    restorer = load_restorer(args.checkpoint).eval()
    print(
        f"{args.checkpoint.name}, {args.pairs} training-like pairs of 192 px per kind, seed {SEED}"
    )
    print()
    labels = ["off (first pass)"] + [
        f"window {w}, sharpness {s:g}, below {r:g} px" for w, s, r in variants
    ]
    print(f"| PSNR (dB) / radius error (px) | {' | '.join(labels)} |")
    print("|---" + "|---:" * len(labels) + "|")
    means = []
    for kind, (name, settings) in enumerate(kinds().items()):
        if kind not in args.kind:
            continue
        quality, error = scores(
            restorer,
            DefocusPatches.from_cache(args.cache, settings, seed=SEED),
            args.pairs,
            variants,
        )
        means.append(quality.mean(axis=0))
        cells = [
            f"{cell} / {mae:.2f}"
            for cell, mae in zip(gain_cells(quality), error.mean(axis=0), strict=True)
        ]
        print(f"| {name} | {' | '.join(cells)} |", flush=True)
    row, best = mean_of_kinds(means)
    print(row)
    print()
    print(f"best: {labels[best]}")


if __name__ == "__main__":
    main()
