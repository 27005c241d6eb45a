"""Cost of the defocus front end beside the network it feeds, and how well it tiles.

Times, round-robin so that machine noise hits every variant alike, on a batch of tiles:
- `network`: the `lite` network alone on 6-channel tiles (what refines the blend);
- `bank`: the Wiener bank (every radius x regularisation, with its edge tapers);
- `estimator`: the blur estimator on the bank's candidates;
- `front end`: bank + estimator + blend, what runs before the network;
- `restorer`: the whole deployable model (front end, prior T=4, network).
It prints medians of CPU time (one thread by default; wall time on a shared machine mostly
measures the neighbours) and each variant's share of the network's time in the same run.

Then the seams: the front end's blend and radius map on one evaluation photo, tiled as deployed
(feathered 256 px tiles, 32 px overlap) against the whole image at once.

    python -m bench.front_end_speed --repeats 7 --threads 1 [--checkpoint CHECKPOINT]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from bench.prior_speed import interleaved_times
from model.config import model_preset
from model.data.degrade import convolve, quantise_8bit
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


def speed_table(restorer: Restorer, batch: int, tile_px: int, repeats: int) -> list[str]:
    """Markdown rows: median CPU ms per variant and its share of the network's."""
    defocus = restorer.defocus
    assert defocus is not None, "the checkpoint has no defocus front end"
    tiles = torch.rand(batch, 3, tile_px, tile_px)
    network_in = torch.rand(batch, 6, tile_px, tile_px)
    candidates = defocus.bank(tiles)
    variants = {
        "network (lite, 6 channels)": lambda: restorer.network(network_in),
        "bank": lambda: defocus.bank(tiles),
        "estimator": lambda: defocus.estimator(tiles, candidates),
        "front end (bank + estimator + blend)": lambda: defocus(tiles),
        "restorer (front end + prior T=4 + network)": lambda: restorer.restore(tiles),
    }
    with torch.inference_mode():
        _, cpu = interleaved_times(variants, repeats, torch.device("cpu"))
    base = statistics.median(cpu["network (lite, 6 channels)"])
    rows = [
        f"| {tile_px} px tiles, batch {batch}, {torch.get_num_threads()} thread(s) |"
        " CPU ms (median) | share of the network |",
        "|---|---:|---:|",
    ]
    for name, samples in cpu.items():
        median = statistics.median(samples)
        rows.append(f"| {name} | {1000 * median:.0f} | {median / base:.2f} |")
    return rows


def seam_table(restorer: Restorer, photo: str, radius_px: float) -> list[str]:
    """Markdown rows: tiled against whole-image front end on one blurred evaluation photo."""
    defocus = restorer.defocus
    assert defocus is not None
    ((_, sharp),) = load_eval_photos([p for p in EVAL_PHOTOS if p.name == photo], crop_px=768)
    blurry = quantise_8bit(convolve(sharp, disk_psf(radius_px)))
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
    print("\n".join(speed_table(restorer, args.batch, args.tile_px, args.repeats)))
    print()
    print("\n".join(seam_table(restorer, args.photo, args.radius)))


if __name__ == "__main__":
    main()
