"""Cost of the defocus front end beside the network it feeds, and how well it tiles.

Times, round-robin so that machine noise hits every variant alike, on a batch of tiles cut from
one evaluation photo blurred by a disk (`--photo`, `--radius`; what the front end skips depends
on the image, so random pixels would time a case no user sends):
- `network`: the `lite` network alone on 6-channel tiles (what refines the blend);
- `bank`: the Wiener bank on the tiles' luminance (every radius x regularisation, with its
  edge tapers), what the estimator reads;
- `estimator`: the blur estimator on those candidates;
- `front end`: luminance bank + estimator + the red and blue bank of the candidates each tile
  weights (`model.defocus.SKIP_WEIGHT`) + blend, what runs before the network;
- `front end, every candidate`: the same with nothing skipped (what training runs);
- `restorer`: the whole deployable model (front end, prior T=4, network).
It prints medians of CPU time (one thread by default; wall time on a shared machine mostly
measures the neighbours), each variant's share of the network's time in the same run, and the
share of the red and blue candidates the tiles kept.

Then the seams: the front end's blend and radius map on one evaluation photo, tiled as deployed
(feathered 256 px tiles, 32 px overlap) against the whole image at once.

    python -m bench.front_end_speed --repeats 7 --threads 1 [--checkpoint CHECKPOINT]
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path

import numpy as np
import torch

from bench.prior_speed import interleaved_times
from model.config import model_preset
from model.data.degrade import convolve, quantise_8bit
from model.defocus import DefocusFrontEnd, luma
from model.evaluation.cases import EVAL_PHOTOS, load_eval_photos
from model.evaluation.metrics import psnr
from model.psf import disk_psf
from model.restorer import Restorer, build_restorer, load_restorer
from model.tiling import TileSettings, restore_tiled


def _restorer(checkpoint: Path | None) -> Restorer:
    if checkpoint is not None:
        return load_restorer(checkpoint).eval()
    torch.manual_seed(0)
    return build_restorer(model_preset("lite-defocus")).eval()


def _blurred_photo(photo: str, radius_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(sharp, blurry) (h, w, 3) of an evaluation photo blurred by a disk, 8-bit quantised."""
    ((_, sharp),) = load_eval_photos([p for p in EVAL_PHOTOS if p.name == photo], crop_px=768)
    return sharp, quantise_8bit(convolve(sharp, disk_psf(radius_px)))


def _blurred_tiles(photo: str, radius_px: float, batch: int, tile_px: int) -> torch.Tensor:
    """`batch` tiles (batch, 3, tile, tile) from the photo blurred by a disk, row by row."""
    blurry = torch.from_numpy(_blurred_photo(photo, radius_px)[1])
    h, w = blurry.shape[:2]
    corners = [
        (y, x)
        for y in range(0, h - tile_px + 1, tile_px)
        for x in range(0, w - tile_px + 1, tile_px)
    ]
    if len(corners) < batch:
        raise ValueError(f"{photo} holds {len(corners)} tiles of {tile_px} px, not {batch}")
    tiles = [blurry[y : y + tile_px, x : x + tile_px] for y, x in corners[:batch]]
    return torch.stack(tiles).permute(0, 3, 1, 2).contiguous()


def kept_share(defocus: DefocusFrontEnd, tiles: torch.Tensor) -> float:
    """Share of the (tile, radius, regularisation) candidates the front end computes in colour."""
    with torch.inference_mode():
        candidate_luma = defocus.bank(luma(tiles)[:, None])[:, :, :, 0]
        radius_logits, balance_logits = defocus.estimator(tiles, candidate_luma)
    radius_weights = defocus.radius_weights(radius_logits)  # (B, R, H, W)
    weights = radius_weights[:, :, None] * balance_logits.softmax(dim=1)[:, None]
    return float(defocus.kept(weights).float().mean())


def speed_table(
    restorer: Restorer, batch: int, tile_px: int, repeats: int, photo: str, radius_px: float
) -> list[str]:
    """Markdown rows: median CPU ms per variant and its share of the network's."""
    defocus = restorer.defocus
    assert defocus is not None, "the checkpoint has no defocus front end"
    tiles = _blurred_tiles(photo, radius_px, batch, tile_px)
    grey = luma(tiles)[:, None]
    network_in = torch.cat([tiles, tiles], dim=1)
    dense = copy.deepcopy(defocus)
    dense.skip_weight = 0.0
    with torch.inference_mode():
        candidate_luma = defocus.bank(grey)[:, :, :, 0]
    variants = {
        "network (lite, 6 channels)": lambda: restorer.network(network_in),
        "bank (luminance, every candidate)": lambda: defocus.bank(grey),
        "estimator": lambda: defocus.estimator(tiles, candidate_luma),
        "front end (bank + estimator + colour of the kept + blend)": lambda: defocus(tiles),
        "front end, every candidate": lambda: dense(tiles),
        "restorer (front end + prior T=4 + network)": lambda: restorer.restore(tiles),
    }
    with torch.inference_mode():
        _, cpu = interleaved_times(variants, repeats, torch.device("cpu"))
    base = statistics.median(cpu["network (lite, 6 channels)"])
    rows = [
        f"| {tile_px} px tiles of {photo} at r = {radius_px:g} px, batch {batch},"
        f" {torch.get_num_threads()} thread(s) | CPU ms (median) | share of the network |",
        "|---|---:|---:|",
    ]
    for name, samples in cpu.items():
        median = statistics.median(samples)
        rows.append(f"| {name} | {1000 * median:.0f} | {median / base:.2f} |")
    rows.append(f"| red and blue candidates kept | {kept_share(defocus, tiles):.0%} | |")
    return rows


def seam_table(restorer: Restorer, photo: str, radius_px: float) -> list[str]:
    """Markdown rows: tiled against whole-image front end on one blurred evaluation photo."""
    defocus = restorer.defocus
    assert defocus is not None
    sharp, blurry = _blurred_photo(photo, radius_px)
    image = torch.from_numpy(blurry).permute(2, 0, 1)[None]

    def both(tile: torch.Tensor) -> torch.Tensor:
        out = defocus(tile)
        return torch.cat([out.blend, out.radius_px], dim=1)

    with torch.inference_mode():
        whole = both(image)
        tiled = restore_tiled(both, image, TileSettings(), out_channels=4)
    blend_whole = whole[0, :3].clamp(0, 1).permute(1, 2, 0).numpy()
    blend_tiled = tiled[0, :3].clamp(0, 1).permute(1, 2, 0).numpy()
    radius_gap = (tiled[0, 3] - whole[0, 3]).abs()
    h, w = blurry.shape[:2]
    return [
        f"| {photo} {h}x{w}, disk r = {radius_px:g} px | tiled (256/32 feathered) | whole image |",
        "|---|---:|---:|",
        f"| blend PSNR vs sharp (dB) | {psnr(blend_tiled, sharp):.2f} |"
        f" {psnr(blend_whole, sharp):.2f} |",
        f"| blend, tiled vs whole: max / mean abs difference |"
        f" {float(np.abs(blend_tiled - blend_whole).max()):.4f} /"
        f" {float(np.abs(blend_tiled - blend_whole).mean()):.5f} | |",
        f"| radius map, tiled vs whole: max / mean abs difference (px) |"
        f" {float(radius_gap.max()):.3f} / {float(radius_gap.mean()):.4f} | |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: random weights")
    parser.add_argument("--tile-px", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--photo", default="kodim23")
    parser.add_argument("--radius", type=float, default=4.5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    restorer = _restorer(args.checkpoint)
    rows = speed_table(restorer, args.batch, args.tile_px, args.repeats, args.photo, args.radius)
    print("\n".join(rows))
    print()
    print("\n".join(seam_table(restorer, args.photo, args.radius)))


if __name__ == "__main__":
    main()
