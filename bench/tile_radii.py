"""Radii chosen per tile: deconvolve at radii fitted to each tile's blur estimate, not the bank's.

The shipped front end blends the Wiener candidates of a fixed 12-radius bank, so a pixel whose
radius lies between two bank radii gets a linear mix of two wrong deconvolutions
(`bench.bank_ceiling`: even with the true map the blend caps 1.6 dB below exact-disk Wiener).
The model card proposed radii chosen per tile instead. This measures it without retraining:
per tile, the estimated (or true) radius map's 2nd to 98th percentiles are covered by node
radii on a geometric grid (neighbours at most `--step` apart, at most `MAX_NODES`; r = 0 joins
where the tile reaches in-focus), the tile is deconvolved at each node and each regularisation,
and each pixel takes its two nearest nodes linearly, weighted by the estimator's
regularisation as before. On uniform blur the nodes collapse onto the tile's radius, so the
blend is one deconvolution at the estimated radius.

Two tables:
- `--set synthetic|layered`: the first `--limit` evaluation photos through the deployed path
  (feathered tiles, prior, network), the true map fed in, and the blends alone, for the bank
  and for the tile radii;
- `--pairs N`: the training-like pairs of `bench.radius_temperature` (seed 98, three kinds),
  by which candidates are chosen.

    python -m bench.tile_radii --set synthetic --limit 3
    python -m bench.tile_radii --pairs 32 --step 1.05 1.15
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bench.pair_tables import Variant, gain_cells, mean_of_kinds, pair_scores
from bench.radius_temperature import rule_pairs
from model.config import DefocusConfig
from model.deconvolution import WienerBank
from model.defocus import DefocusFrontEnd, linear_labels
from model.evaluation.cases import EVAL_PHOTOS, layered_cases, load_eval_photos, synthetic_cases
from model.evaluation.evaluate import CaseFn, MethodResult, evaluate, evaluate_cases, markdown_table
from model.evaluation.model_rows import FrontMode, ModelRow, RowFn, restorer_fn
from model.restorer import Restorer, load_restorer
from model.tiling import TileSettings

MAX_NODES = 8  # deconvolutions per tile and regularisation, at most
IN_FOCUS_PX = 0.35  # a tile whose low percentile lies below this also gets the r = 0 node
SAME_RADIUS_PX = 0.01  # a tile whose percentiles lie closer than this gets one node
LOW_QUANTILE, HIGH_QUANTILE = 0.02, 0.98  # the part of a tile's radius map the nodes span


def node_radii(
    radius_px: Tensor, step: float, largest_px: float, max_nodes: int = MAX_NODES
) -> tuple[float, ...]:
    """Node radii (ascending) for one tile's radius map (any shape, in px).

    Its 2nd to 98th percentiles (clamped to [0, `largest_px`]) on a geometric grid whose
    neighbours are at most `step` (> 1) apart where `max_nodes` allows; r = 0 first where the
    low percentile is below `IN_FOCUS_PX`. One node where the tile's blur is uniform.
    """
    if step <= 1.0:
        raise ValueError(f"step must be > 1, got {step}")
    values = radius_px.detach().flatten().float()
    low = min(max(float(torch.quantile(values, LOW_QUANTILE)), 0.0), largest_px)
    high = min(max(float(torch.quantile(values, HIGH_QUANTILE)), 0.0), largest_px)
    nodes: list[float] = []
    if low < IN_FOCUS_PX:
        nodes.append(0.0)
        low = IN_FOCUS_PX
        if high <= low:
            return tuple(nodes)
    count = min(math.ceil(math.log(high / low) / math.log(step)) + 1, max_nodes - len(nodes))
    if count <= 1 or high - low < SAME_RADIUS_PX:
        return (*nodes, high) if nodes else (math.sqrt(low * high),)
    return (*nodes, *(float(r) for r in np.geomspace(low, high, count)))


def node_weights(radius_px: Tensor, nodes: Sequence[float]) -> Tensor:
    """One tile's radius map (1, 1, H, W) as weights over `nodes`: (1, K, H, W), each pixel
    split linearly between its two nearest nodes (all on the one node where K = 1)."""
    if len(nodes) == 1:
        return torch.ones_like(radius_px)
    return linear_labels(radius_px, torch.tensor(nodes, device=radius_px.device))


class TileRadiiFrontEnd(DefocusFrontEnd):
    """The shipped front end (same estimator, same weights) whose blend deconvolves each tile
    at its own node radii (`node_radii`) instead of blending the bank's candidates."""

    def __init__(self, config: DefocusConfig, step: float) -> None:
        super().__init__(config)
        self.step = step

    def blend(
        self,
        image: Tensor,
        candidate_luma: Tensor,
        radius_weights: Tensor,
        balance_weights: Tensor,
    ) -> Tensor:
        """Per tile: Wiener at its node radii and the bank's regularisations, each pixel
        weighted by its radius (the estimate's mean, or the true map) and the estimated
        regularisation. `candidate_luma` (the bank's) is not used."""
        expected = self.expected_radius(radius_weights)  # (B, 1, H, W)
        blends = []
        for index in range(image.shape[0]):
            nodes = node_radii(expected[index], self.step, self.config.radii_px[-1])
            bank = WienerBank(nodes, self.config.balances, self.config.margin_px).to(image.device)
            radius = node_weights(expected[index : index + 1], nodes)  # (1, K, H, W)
            weights = (
                radius[:, :, None] * balance_weights[index : index + 1, None]
            )  # (1, K, N, H, W)
            keep = torch.ones(weights.shape[:3], dtype=torch.bool, device=image.device)
            blends.append(bank.blend(image[index : index + 1], weights, keep))
        return torch.cat(blends)


def with_tile_radii(restorer: Restorer, step: float) -> Restorer:
    """`restorer` with its front end's blend replaced by the tile radii (weights shared)."""
    if restorer.defocus is None:
        raise ValueError("the checkpoint has no defocus front end")
    front = TileRadiiFrontEnd(restorer.defocus.config, step)
    front.load_state_dict(restorer.defocus.state_dict())
    return Restorer(restorer.network, restorer.prior, front.eval())


ROWS = (
    ("deployed", FrontMode.ESTIMATED, False),
    ("true radius map fed in", FrontMode.TRUE_MAP, False),
    ("blend alone (estimated)", FrontMode.ESTIMATED, True),
    ("blend alone (true radius map)", FrontMode.TRUE_MAP, True),
)


def evaluation_rows(
    variants: Sequence[tuple[str, Restorer]], set_name: str, limit: int
) -> list[MethodResult]:
    """Each `ROWS` entry for each named restorer, on the first `limit` photos of a set."""
    photos = load_eval_photos(EVAL_PHOTOS[:limit])
    cases = synthetic_cases(photos) if set_name == "synthetic" else layered_cases(photos)
    results = [evaluate(lambda image: image, cases, "input (blurred)")]
    for label, front, blend_only in ROWS:
        for name, restorer in variants:
            row = ModelRow(f"{name}: {label}", True, None, TileSettings(), front, blend_only)
            results.append(evaluate_cases(case_fn(restorer_fn(restorer, row)), cases, row.label))
    return results


def case_fn(fn: RowFn) -> CaseFn:
    """A row's (blurry, true map) callable as the harness's per-case one."""
    return lambda case: fn(case.blurry, case.radius_map)


def pair_table(variants: Sequence[tuple[str, Restorer]], cache: Path, count: int) -> list[str]:
    """Markdown lines: the training-like pairs' mean PSNR per kind and variant."""

    def deployed(restorer: Restorer) -> Variant:
        return lambda tiles: restorer.run(tiles).restored

    lines = [
        f"| PSNR (dB), {count} pairs of 192 px per kind | {' | '.join(n for n, _ in variants)} "
        f"| time per pair against the first |",
        "|---" + "|---:" * (len(variants) + 1) + "|",
    ]
    means = []
    for name, pairs in rule_pairs(cache).items():
        quality, seconds = pair_scores(pairs, count, [deployed(r) for _, r in variants])
        means.append(quality.mean(axis=0))
        medians = np.median(seconds, axis=0)
        times = ", ".join(f"{t / medians[0]:.2f}x" for t in medians)
        lines.append(f"| {name} | {' | '.join(gain_cells(quality))} | {times} |")
    row, _ = mean_of_kinds(means)
    return [*lines, f"{row} |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("weights/default.safetensors"))
    parser.add_argument("--set", choices=("synthetic", "layered"), default=None)
    parser.add_argument("--limit", type=int, default=3, help="first N evaluation photos")
    parser.add_argument("--pairs", type=int, default=0, help="training-like pairs per kind")
    parser.add_argument("--cache", type=Path, default=Path("data/cache"))
    parser.add_argument(
        "--step", type=float, nargs="+", default=[1.05], help="largest ratio of neighbour nodes"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.set is None and args.pairs <= 0:
        parser.error("ask for --set and/or --pairs")
    torch.set_num_threads(args.threads)
    shipped = load_restorer(args.checkpoint).eval()
    if shipped.defocus is None:
        parser.error(f"{args.checkpoint} has no defocus front end")
    variants = [("bank", shipped)]
    variants += [(f"tile radii, step {s:g}", with_tile_radii(shipped, s)) for s in args.step]
    radii = ", ".join(f"{r:g}" for r in shipped.defocus.config.radii_px)
    print(f"{args.checkpoint.name}; bank radii {radii} px")
    if args.set is not None:
        print()
        print(f"{args.set} set, first {args.limit} photos, PSNR (dB):")
        print()
        print(markdown_table(evaluation_rows(variants, args.set, args.limit)))
    if args.pairs > 0:
        print()
        print("\n".join(pair_table(variants, args.cache, args.pairs)))


if __name__ == "__main__":
    main()
