"""The blur estimator's readings against the true radius, binned, on training-like pairs.

The evaluation sets tell how far an estimate is off at four radii; this tells where the
estimator's readings go across the whole training range, on pairs made the way training makes
them (`model.data.pairs.DefocusPatches` over the prepared photos, never the evaluation's photos):
perfect disks with one radius throughout, perfect disks over layered depth, and the training
mix (softened and cat-eye lenses, dead leaves). For each kind it prints, per bin of the true
radius, the share of pixels, the mean true radius, the mean estimate and the mean absolute error
(16 px borders excluded). An estimator that compresses its readings (reads large radii as
middling ones) shows it here.

    python -m bench.estimator_bias --checkpoint weights/lite_defocus.safetensors [--pairs 48]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import torch

from model.data.degrade import BlurDistribution, KernelShapes, SensorModel
from model.data.pairs import DefocusPatches, PatchSettings
from model.restorer import Restorer, load_restorer

BINS_PX = (0.0, 0.75, 2.0, 3.5, 5.0, 7.0, 13.0)
BORDER_PX = 16


def kinds(noise_sigma_max: float = 0.02) -> dict[str, PatchSettings]:
    """The pair kinds, named; their noise sigma is drawn from [0, `noise_sigma_max`] (0 = no
    added noise, only 8-bit quantisation: a camera at base ISO)."""

    def settings(uniform: float, dead_leaves: float, shapes: KernelShapes | None) -> PatchSettings:
        blur = BlurDistribution(max_radius_median_px=5.5, max_px=10.0, uniform_fraction=uniform)
        return PatchSettings(
            patch_px=192,
            dead_leaves_fraction=dead_leaves,
            blur=blur,
            sensor=SensorModel(noise_sigma_max=noise_sigma_max, jpeg_probability=0.0),
            shapes=shapes,
        )

    return {
        "disks, photos, one radius throughout": settings(1.0, 0.0, None),
        "disks, photos, layered depth": settings(0.0, 0.0, None),
        "training mix (lenses, dead leaves, 10 % uniform)": settings(0.1, 0.3, KernelShapes()),
    }


def readings(
    restorer: Restorer, pairs: DefocusPatches, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """(estimates, true radii), flattened over `count` pairs, borders excluded."""
    if restorer.defocus is None:
        raise ValueError("this checkpoint has no defocus front end")
    estimates, truths = [], []
    inner = slice(BORDER_PX, -BORDER_PX)
    for index in range(count):
        blurry, _, radius = pairs.pair(index)
        with torch.inference_mode():
            image = torch.from_numpy(blurry).permute(2, 0, 1)[None]  # (1, 3, p, p)
            estimate = restorer.defocus(image).radius_px[0, 0].numpy()
        estimates.append(estimate[inner, inner].ravel())
        truths.append(radius[inner, inner].ravel())
    return np.concatenate(estimates), np.concatenate(truths)


def main() -> None:
    parser = argparse.ArgumentParser(description="blur estimator readings on training-like pairs")
    parser.add_argument("--checkpoint", type=Path, default=Path("weights/lite_defocus.safetensors"))
    parser.add_argument("--cache", type=Path, default=Path("data/cache"))
    parser.add_argument("--pairs", type=int, default=48)
    args = parser.parse_args()
    torch.set_num_threads(1)
    restorer = load_restorer(args.checkpoint).eval()
    print(f"{args.checkpoint.name}, {args.pairs} pairs of 192 px per kind, seed 99")
    for name, settings in kinds().items():
        pairs = DefocusPatches.from_cache(args.cache, settings, seed=99)
        estimate, truth = readings(restorer, pairs, args.pairs)
        error = np.abs(estimate - truth)
        print(f"\n{name}: MAE {error.mean():.2f} px\n")
        print("| true radius (px) | share | mean true | mean estimate | MAE |")
        print("|---|---:|---:|---:|---:|")
        for low, high in itertools.pairwise(BINS_PX):
            inside = (truth >= low) & (truth < high)
            if inside.any():
                print(
                    f"| [{low:g}, {high:g}) | {inside.mean():.2f} | {truth[inside].mean():.2f} |"
                    f" {estimate[inside].mean():.2f} | {error[inside].mean():.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
