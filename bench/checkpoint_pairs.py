"""Checkpoints side by side on training-like pairs: the rule that chooses a default.

The evaluation photos are a test, not a place to choose a model; candidates are ranked here, on
pairs made the way training makes them from the prepared (training) photos: the three kinds of
`bench.estimator_bias.kinds` (uniform disks, layered disks, the training mix), the pairs of
`bench.radius_temperature` (seed 98, 192 px). Each pair is restored by every checkpoint's whole
deployable model in turn, and the table gives each one's mean PSNR, its gain over the first
checkpoint and the share of pairs that gained; the last row is the mean over the kinds, the
choosing rule. `--noise-max 0` makes the same pairs without added noise (only 8-bit
quantisation), to see what a checkpoint does with clean input, beside the rule, not in it.

    python -m bench.checkpoint_pairs weights/default.safetensors RUN/last.safetensors [--pairs 32]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench.pair_tables import gain_cells, mean_of_kinds, pair_scores
from bench.radius_temperature import SEED, rule_pairs
from model.data.pairs import DefocusPatches
from model.restorer import Restorer, load_restorer


def table_rows(
    restorers: list[Restorer], pair_sets: dict[str, DefocusPatches], count: int
) -> list[str]:
    """One markdown row per named set of pairs, then their mean, for the restorers in order."""
    means, rows = [], []
    for name, pairs in pair_sets.items():
        table, _ = pair_scores(pairs, count, [restorer.restore for restorer in restorers])
        means.append(table.mean(axis=0))
        rows.append(f"| {name} | {' | '.join(gain_cells(table))} |")
    row, _ = mean_of_kinds(means)
    return [*rows, row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--cache", type=Path, default=Path("data/cache"))
    parser.add_argument("--pairs", type=int, default=32, help="pairs of 192 px per kind")
    parser.add_argument(
        "--noise-max", type=float, default=0.02, help="noise sigma drawn from [0, this]"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    restorers = [load_restorer(path).eval() for path in args.checkpoints]
    print(
        f"{args.pairs} training-like pairs of 192 px per kind, seed {SEED},"
        f" noise sigma up to {args.noise_max:g}"
    )
    print()
    names = " | ".join(str(path) for path in args.checkpoints)
    print(f"| PSNR (dB) | {names} |")
    print("|---" + "|---:" * len(args.checkpoints) + "|")
    for row in table_rows(restorers, rule_pairs(args.cache, args.noise_max), args.pairs):
        print(row, flush=True)


if __name__ == "__main__":
    main()
