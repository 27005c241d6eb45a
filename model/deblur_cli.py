"""`swintormer deblur`: restore one image file locally, tile by tile, with a progress bar.

Any size (tiled, so memory does not grow with the image beyond the image itself), EXIF
orientation applied before restoring (the output is stored upright, without the tag), the alpha
channel passed through untouched, the ICC profile kept. A dual-pixel (6-channel) network also
needs the other view: `--left-view`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from model.checkpoint import CheckpointError
from model.devices import PRECISIONS, autocast
from model.restorer import load_restorer
from model.tiling import Blend, TileSettings, restore_tiled
from model.weights import default_checkpoint

BAR_WIDTH = 30


def load_restoring_function(
    checkpoint: Path, device: torch.device
) -> tuple[Callable[[Tensor], Tensor], int]:
    """What restores a batch of tiles, (N, C, t, t) in [0, 1] -> (N, 3, t, t), and its C.

    The one place that loads weights for this command: the network with its diffusion prior
    when the checkpoint holds one (run per tile, seeded, so the output is reproducible).
    """
    restorer = load_restorer(checkpoint, device)
    return restorer.restore, restorer.network.config.in_channels


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `swintormer deblur`."""
    defaults = TileSettings()
    parser.add_argument("image", type=Path, help="blurry image (any format Pillow reads)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="restored image")
    parser.add_argument(
        "--checkpoint", type=Path, help="safetensors checkpoint (default: the shipped weights)"
    )
    parser.add_argument(
        "--left-view", type=Path, help="the other dual-pixel view, for 6-channel networks"
    )
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    parser.add_argument(
        "--precision", choices=tuple(PRECISIONS), default="fp32", help="autocast precision"
    )
    parser.add_argument("--tile-px", type=int, default=defaults.tile_px)
    parser.add_argument("--overlap-px", type=int, default=defaults.overlap_px)
    parser.add_argument("--batch", type=int, default=defaults.batch, help="tiles per forward")
    parser.add_argument("--blend", choices=[b.value for b in Blend], default=defaults.blend.value)


def read_image(path: Path) -> tuple[np.ndarray, np.ndarray | None, bytes | None]:
    """Decode upright: (H, W, 3) float32 RGB in [0, 1], (H, W) uint8 alpha or None, ICC."""
    with Image.open(path) as opened:
        image = ImageOps.exif_transpose(opened)
        icc = opened.info.get("icc_profile")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    alpha = np.asarray(image.getchannel("A")) if image.mode in ("RGBA", "LA") else None
    if image.mode in ("I;16", "I;16B"):  # 16-bit grey: keep the depth through float
        grey = np.asarray(image, dtype=np.float32) / 65535.0
        return np.repeat(grey[..., None], 3, axis=2), alpha, icc
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return rgb, alpha, icc


def write_image(path: Path, rgb: np.ndarray, alpha: np.ndarray | None, icc: bytes | None) -> None:
    """Encode (H, W, 3) float RGB (clamped to [0, 1]) plus the original alpha."""
    pixels = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    image = Image.fromarray(pixels, mode="RGB")
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha, mode="L"))
    if icc:
        image.info["icc_profile"] = icc  # encoders that support profiles write it from here
    image.save(path)


def _progress_bar(done: int, total: int) -> None:
    filled = BAR_WIDTH * done // total
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    end = "\n" if done == total else ""
    print(f"\r[{bar}] {done}/{total} tiles", end=end, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Restore `args.image` into `args.output`; 1 on a bad checkpoint or input."""
    checkpoint = args.checkpoint or default_checkpoint()
    if checkpoint is None:
        print("swintormer deblur: no --checkpoint given and this tree ships no default weights")
        return 1
    device = torch.device(args.device)
    try:
        restore, in_channels = load_restoring_function(checkpoint, device)
        settings = TileSettings(args.tile_px, args.overlap_px, args.batch, Blend(args.blend))
    except (CheckpointError, ValueError) as error:
        print(f"swintormer deblur: {error}")
        return 1
    rgb, alpha, icc = read_image(args.image)
    views = [rgb]
    if in_channels == 6:
        if args.left_view is None:
            print("swintormer deblur: this is a dual-pixel network: pass --left-view")
            return 1
        views.append(read_image(args.left_view)[0])
        if views[1].shape != rgb.shape:
            print(f"swintormer deblur: views differ in size: {rgb.shape} vs {views[1].shape}")
            return 1
    blurry = torch.from_numpy(np.concatenate(views, axis=2)).permute(2, 0, 1)[None].to(device)

    def restore_float(tiles: Tensor) -> Tensor:
        return restore(tiles).float()

    with torch.inference_mode(), autocast(device, args.precision):
        restored = restore_tiled(restore_float, blurry, settings, progress=_progress_bar)
    write_image(args.output, restored[0].permute(1, 2, 0).cpu().numpy(), alpha, icc)
    print(f"wrote {args.output} ({rgb.shape[1]}x{rgb.shape[0]})")
    return 0
