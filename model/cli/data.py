"""`swintormer data prepare`: fetch and prepare the training photographs (see model/data/photos.py).

swintormer data prepare                      # Debian wallpapers -> ~/.cache/swintormer
swintormer data prepare --cache /big/disk    # elsewhere
swintormer data prepare --photos ~/Pictures  # your own photos instead (no apt needed)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from model.data.photos import DROP_FRACTION, PATCH_PX, DataPrepareError, prepare_photos


def default_cache() -> Path:
    """~/.cache/swintormer: outside the repository, reused between runs."""
    return Path.home() / ".cache" / "swintormer"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `swintormer data`."""
    parser.add_argument("action", choices=("prepare",), help="prepare: fetch, downscale, rank")
    parser.add_argument(
        "--cache", type=Path, default=None, help="cache folder (default ~/.cache/swintormer)"
    )
    parser.add_argument(
        "--photos", type=Path, default=None, help="use the photos in DIR instead of apt"
    )
    parser.add_argument("--patch-px", type=int, default=PATCH_PX, help="patch side for ranking")
    parser.add_argument(
        "--drop-fraction",
        type=float,
        default=DROP_FRACTION,
        help="share of least sharp patches to leave out",
    )


def run(args: argparse.Namespace) -> int:
    """Prepare the data and print a summary."""
    cache = args.cache if args.cache is not None else default_cache()
    start = time.perf_counter()
    try:
        prepared = prepare_photos(
            cache,
            args.photos,
            args.patch_px,
            args.drop_fraction,
            progress=lambda line: print(f"  {line}", flush=True),
        )
    except (DataPrepareError, ValueError) as error:
        print(f"swintormer data prepare: {error}", file=sys.stderr)
        return 2
    megapixels = sum(w * h for w, h in (e["prepared_size"] for e in prepared.manifest)) / 1e6
    print(
        f"{len(prepared.manifest)} photos ({megapixels:.1f} MP after x2 downscale), "
        f"{len(prepared.patches)} patches of {prepared.patch_px} px kept, "
        f"in {cache} ({time.perf_counter() - start:.0f} s)"
    )
    return 0
