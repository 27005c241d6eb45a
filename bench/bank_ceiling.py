"""What the Wiener bank can give when the blur is known, and what a finer bank would add.

Every case of an evaluation set (its first `--limit` photos) is deconvolved by the bank and
blended by the case's true radius map, with the soft labels training uses (a radius between
two bank radii splits its weight linearly between them), at each of the bank's
regularisations and at the better one per cell. That is the blend a perfect blur estimator
would hand the network. The table puts it beside:
- Wiener with the exact disk at the same regularisations, and the oracle Wiener (true disk,
  balance chosen per cell from 21), on uniform blur; with `--radius-error E`, Wiener with disks
  E too small and too large (what a blur estimator's error costs before any bank); the best
  single-radius Wiener per image on the layered set;
- the same blend from banks with more radii (`--radii K`: K radii, r = 0 then a geometric grid
  from `FIRST_RADIUS_PX` to the bank's largest radius), the bank's regularisations kept.
Nothing here is learned: it bounds what the front end can reach before the network refines.

    python -m bench.bank_ceiling [--set layered] [--limit 3] [--radii 24] [--radius-error 0.1]
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from model.config import DefocusConfig
from model.defocus import DefocusFrontEnd
from model.evaluation.baselines import wiener
from model.evaluation.cases import (
    EVAL_PHOTOS,
    EvalCase,
    layered_cases,
    load_eval_photos,
    synthetic_cases,
)
from model.evaluation.evaluate import (
    MethodResult,
    evaluate,
    evaluate_cases,
    markdown_table,
    oracle_wiener,
    single_radius_wiener,
)
from model.psf import disk_psf
from model.restorer import load_restorer

FIRST_RADIUS_PX = 0.45  # smallest non-zero radius of the finer grids (the shipped bank: 0.6)


def geometric_radii(count: int, largest_px: float) -> tuple[float, ...]:
    """`count` bank radii: 0 (in focus), then a geometric grid up to `largest_px`, 0.01 px steps.

    Disk transfer functions scale with 1 / r, so a relative step keeps each neighbour pair
    equally far apart in what deconvolution sees.
    """
    if count < 3:
        raise ValueError(f"a grid needs at least 3 radii, got {count}")
    grid = np.geomspace(FIRST_RADIUS_PX, largest_px, count - 1)
    return (0.0, *(round(float(r), 2) for r in grid))


def best_per_group(results: Sequence[MethodResult], name: str) -> MethodResult:
    """Per group, the scores of the result with the best mean PSNR there (an oracle choice)."""
    best = MethodResult(name, [])
    for group in results[0].groups():
        chosen = max(results, key=lambda r: r.mean(group)[0])
        best.scores += [s for s in chosen.scores if s.group == group]
        best.notes[group] = chosen.method
    return best


def true_map_blends(
    config: DefocusConfig, cases: Sequence[EvalCase], label: str
) -> list[MethodResult]:
    """The bank of `config` blended by each case's true radius map: one row per
    regularisation, then the better one per group."""
    front = DefocusFrontEnd(config)

    def blend(case: EvalCase, balance: int) -> np.ndarray:
        assert case.radius_map is not None, f"{case.image_name} has no radius map"
        image = torch.from_numpy(case.blurry).permute(2, 0, 1)[None]  # (1, 3, H, W)
        radius = torch.from_numpy(case.radius_map)[None, None]  # (1, 1, H, W)
        labels = front.soft_labels(radius)  # (1, R, H, W)
        weights = torch.zeros(
            labels.shape[0], labels.shape[1], len(config.balances), *labels.shape[2:]
        )
        weights[:, :, balance] = labels  # (1, R, N, H, W)
        with torch.inference_mode():
            out = front.bank.blend(image, weights, front.kept(weights))  # (1, 3, H, W)
        return out[0].clamp(0, 1).permute(1, 2, 0).numpy()

    rows = [
        evaluate_cases(
            lambda c, n=n: blend(c, n),  # type: ignore[misc]
            cases,
            f"{label}, true map, balance {b:g}",
        )
        for n, b in enumerate(config.balances)
    ]
    return [*rows, best_per_group(rows, f"{label}, true map, better balance per cell")]


def exact_wiener(
    balances: Sequence[float], cases: Sequence[EvalCase], scale: float = 1.0
) -> list[MethodResult]:
    """Wiener with each case's disk, its radius times `scale` (1: the true disk; else what an
    estimator off by that factor would invert), at the bank's regularisations, then the
    better one per group."""
    disk = "true disk" if scale == 1.0 else f"disk r x {scale:g}"
    rows = []
    for balance in balances:

        def restore(case: EvalCase, b: float = balance) -> np.ndarray:
            return wiener(case.blurry, disk_psf(case.radius_px * scale), b)

        rows.append(evaluate_cases(restore, cases, f"Wiener, {disk}, balance {balance:g}"))
    return [*rows, best_per_group(rows, f"Wiener, {disk}, better bank balance per cell")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=("synthetic", "layered"), default="synthetic")
    parser.add_argument("--limit", type=int, default=3, help="first N evaluation photos")
    parser.add_argument(
        "--radii", type=int, action="append", default=[], help="a finer bank of K radii"
    )
    parser.add_argument(
        "--radius-error",
        type=float,
        action="append",
        default=[],
        help="also Wiener with disks of r x (1 +- E), e.g. 0.1: an estimator off by 10 %%",
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="its bank (default: preset)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = DefocusConfig()
    if args.checkpoint is not None:
        defocus = load_restorer(args.checkpoint).defocus
        if defocus is None:
            parser.error(f"{args.checkpoint} has no defocus front end")
        config = defocus.config
    photos = load_eval_photos(EVAL_PHOTOS[: args.limit])
    cases = synthetic_cases(photos) if args.set == "synthetic" else layered_cases(photos)

    rows = [evaluate(lambda image: image, cases, "input (blurred)")]
    if args.set == "synthetic":
        rows += [oracle_wiener(cases), *exact_wiener(config.balances, cases)]
        for error in args.radius_error:
            for scale in (1.0 - error, 1.0 + error):
                rows.append(exact_wiener(config.balances, cases, scale)[-1])
    else:
        rows.append(single_radius_wiener(cases))
    banks = [("bank", config)]
    for count in args.radii:
        radii = geometric_radii(count, config.radii_px[-1])
        banks.append((f"{count}-radius bank", dataclasses.replace(config, radii_px=radii)))
    for label, bank_config in banks:
        rows += true_map_blends(bank_config, cases, label)

    print(f"{args.set} set, first {args.limit} photos; PSNR (dB), 16 px border excluded:")
    print()
    print(markdown_table(rows))
    print()
    for label, bank_config in banks:
        print(f"- {label}: radii {', '.join(f'{r:g}' for r in bank_config.radii_px)} px")
    for row in rows:
        if row.notes and "better" in row.method:
            choice = "; ".join(f"{g}: {n.rsplit(' ', 1)[-1]}" for g, n in row.notes.items())
            print(f"- {row.method}: {choice}")


if __name__ == "__main__":
    main()
