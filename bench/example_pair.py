"""Before/after example of a checkpoint on a held-out evaluation photo.

Degrades one photo of the synthetic evaluation set exactly as `swintormer eval` does (disk
blur of the given radius, noise, 8-bit quantisation), restores it through the deployed path
(`load_restorer` + feathered 256 px tiles, the worker's default prior noise), writes both
images as 8-bit PNG and prints their PSNR (16 px border excluded):

    python -m bench.example_pair --photo kodim23 --radius 3 --out docs/images
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from model.evaluation.cases import EVAL_PHOTOS, load_eval_photos, synthetic_cases
from model.evaluation.metrics import psnr
from model.evaluation.model_rows import model_rows, restorer_fn
from model.restorer import load_restorer
from model.tiling import TileSettings
from model.weights import default_checkpoint


def _save(path: Path, rgb: np.ndarray) -> None:
    Image.fromarray(np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: shipped weights")
    parser.add_argument("--photo", default="kodim23", choices=[p.name for p in EVAL_PHOTOS])
    parser.add_argument("--radius", type=float, default=3.0, help="disk blur radius (px)")
    parser.add_argument("--noise", type=float, default=0.0, help="Gaussian noise sigma")
    parser.add_argument("--label", default="lite", help="suffix of the restored file's name")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()

    checkpoint = args.checkpoint or default_checkpoint()
    if checkpoint is None:
        parser.error("no --checkpoint and no shipped weights under weights/")
    photos = load_eval_photos([p for p in EVAL_PHOTOS if p.name == args.photo])
    (case,) = synthetic_cases(photos, radii_px=[args.radius], noise_sigmas=[args.noise])
    restorer = load_restorer(checkpoint).eval()
    deployed = model_rows(restorer, args.label, TileSettings(), ablations=False)[0]
    restored = restorer_fn(restorer, deployed)(case.blurry, case.radius_map)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.photo}_r{args.radius:g}"
    _save(args.out / f"{stem}_blurred.png", case.blurry)
    _save(args.out / f"{stem}_restored_{args.label}.png", restored)
    print(f"| {args.photo}, r={args.radius:g}, σ={args.noise:g} | PSNR (dB) |")
    print("|---|---:|")
    print(f"| blurred | {psnr(case.blurry, case.sharp):.2f} |")
    print(f"| restored ({checkpoint.name}) | {psnr(restored, case.sharp):.2f} |")


if __name__ == "__main__":
    main()
