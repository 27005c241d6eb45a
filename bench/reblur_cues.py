"""What the blur estimator's gradient-ratio cue reads at each re-blur width, per true radius.

For each disk radius, training photos (`swintormer data prepare` cache) are blurred by that one
radius throughout, with noise up to `--noise` and 8-bit storage, and the estimator's
gradient-ratio cue (`model.defocus.BlurEstimator`) is computed at every width of `--widths`. A
width reads a radius when the cue keeps falling as the radius grows; where it flattens, the
estimator has nothing to go by. Prints, per radius, the edge-weighted mean log-ratio per width
(and its spread over the photos).

    python -m bench.reblur_cues --cache data/cache [--radii 1.5 3 5 8 11] [--widths 1 2 4 8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from model.config import DefocusConfig
from model.data.degrade import BlurDistribution, SensorModel
from model.data.pairs import DefocusPatches, PatchSettings
from model.defocus import BlurEstimator, luma


def cue_means(
    estimator: BlurEstimator, cache: Path, radius: float, noise: float, photos: int
) -> np.ndarray:
    """(photos, widths): each photo's edge-weighted mean log gradient ratio per width."""
    blur = BlurDistribution(
        max_radius_median_px=radius,
        max_radius_log_sigma=1e-6,
        min_px=min(0.5, radius),
        max_px=max(12.0, radius),
        uniform_fraction=1.0,
    )
    settings = PatchSettings(
        patch_px=192,
        dead_leaves_fraction=0.0,
        blur=blur,
        sensor=SensorModel(noise_sigma_max=noise),
    )
    pairs = DefocusPatches.from_cache(cache, settings, seed=5)
    rows = []
    for index in range(photos):
        blurry, _, _ = pairs.pair(index)
        image = luma(torch.from_numpy(blurry).permute(2, 0, 1)[None])[:, None]  # (1, 1, H, W)
        with torch.inference_mode():
            cues = estimator.gradient_ratios(image)[0]  # (1 + widths, h, w)
        weight = cues[0].exp()
        rows.append([float((cue * weight).sum() / weight.sum()) for cue in cues[1:]])
    return np.asarray(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description="gradient-ratio cue per re-blur width")
    parser.add_argument("--cache", type=Path, default=Path("data/cache"))
    parser.add_argument("--radii", type=float, nargs="+", default=[1.5, 3.0, 5.0, 8.0, 11.0])
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0])
    parser.add_argument("--noise", type=float, default=0.01, help="largest noise sigma")
    parser.add_argument("--photos", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    estimator = BlurEstimator(DefocusConfig(reblur_sigmas_px=tuple(args.widths)))
    widths = " | ".join(f"sigma_0 = {w:g} px" for w in args.widths)
    print(f"edge-weighted mean log gradient ratio (mean ± std over {args.photos} photos)\n")
    print(f"| disk radius (px) | {widths} |")
    print("|---:|" + "---:|" * len(args.widths))
    for radius in args.radii:
        means = cue_means(estimator, args.cache, radius, args.noise, args.photos)
        cells = " | ".join(
            f"{m:.2f} ± {s:.2f}" for m, s in zip(means.mean(0), means.std(0), strict=True)
        )
        print(f"| {radius:g} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
