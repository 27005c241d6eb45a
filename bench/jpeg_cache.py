"""Carry a prepared training cache where uploads are small: photos as JPEG there, PNG again here.

    python -m bench.jpeg_cache pack data/cache DIR     # DIR: manifest, patches, photos as JPEG
    python -m bench.jpeg_cache unpack DIR data/cache   # the cache `swintormer train` reads

`swintormer data prepare` keeps its photos as PNG (61 MB for the 38 photos), more than a lent
GPU machine's upload allows beside the repository. JPEG at quality 95 without chroma
subsampling keeps them within 40 dB PSNR of the PNGs (median 47 dB; printed by `pack`), far
below the training targets' errors (around 30 dB), at 18 MB. `unpack` writes fast-compressed
PNGs under the names `DefocusPatches.from_cache` opens, in parallel.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

QUALITY = 95
INDEX_FILES = ("manifest.json", "patches.json")


def _pack_one(png: Path, jpeg: Path) -> float:
    """Write `png` as a JPEG; the PSNR (dB) of the JPEG against it."""
    with Image.open(png) as image:
        rgb = image.convert("RGB")
    rgb.save(jpeg, quality=QUALITY, subsampling=0)
    with Image.open(jpeg) as back:
        error = np.asarray(back, np.float64) - np.asarray(rgb, np.float64)
    mse = float(np.mean(error**2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _unpack_one(jpeg: Path, png: Path) -> None:
    with Image.open(jpeg) as image:
        image.convert("RGB").save(png, compress_level=1)


def _names(folder: Path) -> list[str]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return [entry["name"] for entry in manifest]


def pack(cache: Path, out: Path) -> list[float]:
    """Copy the cache's index files to `out` and its photos as JPEG; the PSNR of each photo."""
    (out / "photos").mkdir(parents=True, exist_ok=True)
    for name in INDEX_FILES:
        shutil.copyfile(cache / name, out / name)
    names = _names(cache)
    with ProcessPoolExecutor() as pool:
        return list(
            pool.map(
                _pack_one,
                [cache / "photos" / f"{n}.png" for n in names],
                [out / "photos" / f"{n}.jpg" for n in names],
            )
        )


def unpack(packed: Path, cache: Path) -> int:
    """Rebuild a cache from `pack`'s output; the number of photos written."""
    (cache / "photos").mkdir(parents=True, exist_ok=True)
    for name in INDEX_FILES:
        shutil.copyfile(packed / name, cache / name)
    names = _names(packed)
    with ProcessPoolExecutor() as pool:
        list(
            pool.map(
                _unpack_one,
                [packed / "photos" / f"{n}.jpg" for n in names],
                [cache / "photos" / f"{n}.png" for n in names],
            )
        )
    return len(names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("pack", "unpack"))
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    if not (args.source / "manifest.json").is_file():
        print(f"{args.source}: no manifest.json (not a prepared cache)", file=sys.stderr)
        return 2
    if args.action == "pack":
        psnrs = pack(args.source, args.target)
        size_mb = sum(p.stat().st_size for p in (args.target / "photos").iterdir()) / 1e6
        print(
            f"{len(psnrs)} photos, {size_mb:.1f} MB of JPEG, PSNR against the PNGs"
            f" min {min(psnrs):.1f} dB, median {statistics.median(psnrs):.1f} dB"
        )
    else:
        print(f"{unpack(args.source, args.target)} photos written to {args.target / 'photos'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
