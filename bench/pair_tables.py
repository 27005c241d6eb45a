"""Markdown cells of a per-pair score table: every variant's mean, its gain over the first
column and the share of pairs that gained (bench.radius_temperature, bench.blur_refinement)."""

from __future__ import annotations

import numpy as np


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
