"""Per-pair score tables of the training-like-pair benches (bench.radius_temperature,
bench.blur_refinement, bench.self_ensemble_pairs): the pairs restored by each variant, and the
table's markdown cells (every variant's mean, its gain over the first column and the share of
pairs that gained)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from model.data.pairs import DefocusPatches
from model.evaluation.metrics import psnr

Variant = Callable[[Tensor], Tensor]  # (1, C, p, p) blurry -> (1, 3, p, p) restored


def pair_scores(
    pairs: DefocusPatches, count: int, variants: Sequence[Variant]
) -> tuple[np.ndarray, np.ndarray]:
    """PSNR (dB) of the first `count` pairs restored by each variant, and the seconds each
    took: both (count, len(variants)). Variants run in turn on each pair, so machine noise hits
    them alike."""
    quality = np.zeros((count, len(variants)))
    seconds = np.zeros_like(quality)
    for index in range(count):
        blurry, sharp, _ = pairs.pair(index)
        image = torch.from_numpy(blurry).permute(2, 0, 1)[None]  # (1, C, p, p)
        for column, variant in enumerate(variants):
            start = time.perf_counter()
            with torch.inference_mode():
                restored = variant(image)[0].permute(1, 2, 0).numpy()  # (p, p, 3)
            seconds[index, column] = time.perf_counter() - start
            quality[index, column] = psnr(restored, sharp)
    return quality, seconds


def gain_cells(table: np.ndarray) -> list[str]:
    """(pairs, variants) scores -> one cell per variant: "mean" for the first (the reference),
    "mean (+gain, share% gained)" for the others."""
    means = table.mean(axis=0)
    gains = table - table[:, :1]
    return [
        f"{mean:.2f}" if column == 0 else f"{mean:.2f} ({gain:+.2f}, {share:.0%} gained)"
        for column, (mean, gain, share) in enumerate(
            zip(means, gains.mean(axis=0), (gains > 0).mean(axis=0), strict=True)
        )
    ]


def mean_of_kinds(means: list[np.ndarray]) -> tuple[str, int]:
    """The table's last row (each variant's mean over the kinds' means) and the column of the
    best variant: the choosing rule of the benches."""
    overall = np.mean(means, axis=0)
    row = f"| mean of the kinds | {' | '.join(f'{mean:.2f}' for mean in overall)} |"
    return row, int(np.argmax(overall))
