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

A variant may also pool the evidence over the tile (`--pool-tolerance`, tried 2026-12-02, not
kept): each window votes for the radius it fits best, and the cells whose window fits the
winner within that relative residual take the residuals averaged over all such cells, weighted
by `--pooled-sharpness`; the rest keep their window's. On a tile blurred alike this measures
the radius over the whole tile, as precise as the one-radius-per-image fit of the card's first
look. (A first form pooled around the radius that fitted the tile's mean residuals best: in a
layered tile that is a compromise no cell agrees with; the most common reading replaced it.)

    python -m bench.blur_refinement --checkpoint weights/default.safetensors [--pairs 32] \\
        [--window 7 15] [--sharpness 1 4] [--reliable-below 4.1 5.2] \\
        [--pool-tolerance 0.5 2 --pooled-sharpness 1 2]
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bench.estimator_bias import kinds
from bench.pair_tables import gain_cells, mean_of_kinds
from model.data.pairs import DefocusPatches
from model.evaluation.metrics import psnr
from model.reblur import (
    as_log_likelihood,
    cell_energies,
    merge_unreliable,
    radius_evidence,
    relative_cost,
    window_mean,
)
from model.restorer import Restorer, load_restorer

SEED = 97  # pairs other than bench.radius_temperature's (98), bench.estimator_bias's (99)


@dataclass(frozen=True)
class Variant:
    """One setting of the evidence: `model.reblur.radius_evidence`'s three, and optionally the
    tile pooling (module docstring)."""

    window: int  # cells
    sharpness: float
    reliable_below: float  # px
    pool_tolerance: float | None = None
    pooled_sharpness: float = 1.0

    @property
    def label(self) -> str:
        label = (
            f"window {self.window}, sharpness {self.sharpness:g}, below {self.reliable_below:g} px"
        )
        if self.pool_tolerance is None:
            return label
        return f"{label}, pooled within {self.pool_tolerance:g} at {self.pooled_sharpness:g}"

    def evidence(self, restored: Tensor, blurry: Tensor, radii_px: Sequence[float]) -> Tensor:
        """(B, R, H, W) log-likelihood of the bank's radii from the first restoration."""
        if self.pool_tolerance is None:
            return radius_evidence(
                restored, blurry, radii_px, self.sharpness, self.window, self.reliable_below
            )
        return tile_pooled_evidence(restored, blurry, radii_px, self)


def tile_pooled_evidence(
    restored: Tensor, blurry: Tensor, radii_px: Sequence[float], variant: Variant
) -> Tensor:
    """The evidence pooled over the tile where cells agree with its most common reading:
    (B, R, H, W). Each cell's window votes for the radius it fits best, a flat window
    (residuals alike) less; cells whose window fits the winner within `pool_tolerance` share
    their residuals."""
    assert variant.pool_tolerance is not None
    below = variant.reliable_below
    cells = cell_energies(restored, blurry, radii_px)  # (B, R, h, w)
    local = relative_cost(merge_unreliable(window_mean(cells, variant.window), radii_px, below))
    votes = F.one_hot(local.argmin(dim=1), len(radii_px)).permute(0, 3, 1, 2)  # (B, R, h, w)
    weighted = votes * local.amax(dim=1, keepdim=True).clamp(max=1.0)  # flat windows do not vote
    tile_best = weighted.sum(dim=(2, 3), keepdim=True).argmax(dim=1, keepdim=True)  # (B, 1, 1, 1)
    agrees = local.gather(1, tile_best.expand(-1, 1, *local.shape[-2:]))  # (B, 1, h, w)
    weight = (agrees <= variant.pool_tolerance).float()  # (B, 1, h, w)
    pooled = (cells * weight).sum(dim=(2, 3), keepdim=True) / weight.sum(
        dim=(2, 3), keepdim=True
    ).clamp_min(1.0)  # (B, R, 1, 1)
    pooled = merge_unreliable(pooled, radii_px, below)
    cost = torch.where(
        weight > 0,
        variant.pooled_sharpness * relative_cost(pooled),
        variant.sharpness * local,
    )  # (B, R, h, w)
    return as_log_likelihood(cost, blurry)


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
            for variant in variants:
                evidence = variant.evidence(first.restored, image, defocus.config.radii_px)
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
    parser.add_argument(
        "--pool-tolerance", type=float, nargs="+", default=[], help="pooled variants too"
    )
    parser.add_argument("--pooled-sharpness", type=float, nargs="+", default=[1.0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--kind", type=int, nargs="+", default=[0, 1, 2], help="kinds to run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = [
        Variant(window, sharpness, below)
        for window, sharpness, below in itertools.product(
            args.window, args.sharpness, args.reliable_below
        )
    ] + [
        Variant(window, sharpness, below, tolerance, pooled)
        for window, sharpness, below, tolerance, pooled in itertools.product(
            args.window,
            args.sharpness,
            args.reliable_below,
            args.pool_tolerance,
            args.pooled_sharpness,
        )
    ]
    restorer = load_restorer(args.checkpoint).eval()
    print(
        f"{args.checkpoint.name}, {args.pairs} training-like pairs of 192 px per kind, seed {SEED}"
    )
    print()
    labels = ["off (first pass)"] + [variant.label for variant in variants]
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
