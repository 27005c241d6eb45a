"""`swintormer deblur`: restore one image file locally: the worker's runtime without Redis.

The same path as a job of the service: the one codec (`service.codec`: EXIF orientation
applied, alpha and ICC kept, grey returned grey, 16-bit grey kept 16-bit in PNG, CMYK back to
CMYK in JPEG), the worker's `Runtime` (tiled, the prior seeded per tile, smaller tiles on a
CUDA out-of-memory error) and the same defaults (`service.config.Settings`, so `SWINTORMER_*`
variables apply as they do to a worker). The same file, options and seed give the same pixels
as the service. The output format follows the output's suffix (`.png`, `.jpg`/`.jpeg`,
`.webp`). A dual-pixel (6-channel) network also needs the other view: `--left-view`.
With a model that estimates the blur (a defocus front end), `--defocus-map MAP.png` writes the
estimated radius map in the service's format (`service.defocus_map`: 16-bit grey, 0.001 px per
level) and the command prints the same summary as the job status.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from model.checkpoint import CheckpointError
from model.devices import PRECISIONS
from model.tiling import Blend
from service.codec import ImageRefusedError, encode, format_for_suffix, read_file
from service.config import Settings
from service.defocus_map import PX_PER_LEVEL, encode_defocus_map, summarize
from service.schemas import BlurEstimate, DeblurOptions
from swintormer.files import write_atomically
from swintormer.progress_bar import draw_progress, end_progress
from worker.checkpoints import CheckpointMissingError
from worker.runtime import Runtime

# command-line option -> the worker setting it overrides
SETTING_OF_OPTION = {
    "checkpoint": "checkpoint",
    "device": "device",
    "precision": "precision",
    "tile_px": "tile_px",
    "overlap_px": "tile_overlap_px",
    "batch": "tile_batch",
}


class DeblurError(Exception):
    """Something the user must be told; the message is complete."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `swintormer deblur`; unset ones take the worker's settings."""
    parser.add_argument("image", type=Path, help="blurry image (any format Pillow reads)")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, help="restored image: .png, .jpg or .webp"
    )
    parser.add_argument(
        "--checkpoint", type=Path, help="safetensors checkpoint (default: the shipped weights)"
    )
    parser.add_argument(
        "--left-view", type=Path, help="the other dual-pixel view, for 6-channel networks"
    )
    parser.add_argument("--device", help="torch device (default: SWINTORMER_DEVICE, auto)")
    parser.add_argument("--precision", choices=tuple(PRECISIONS), help="autocast precision on CUDA")
    parser.add_argument("--tile-px", type=int, help="tile edge (default: SWINTORMER_TILE_PX)")
    parser.add_argument("--overlap-px", type=int, help="tile overlap in pixels (even)")
    parser.add_argument("--batch", type=int, help="tiles per forward (0: automatic)")
    parser.add_argument("--blend", choices=[b.value for b in Blend], default=Blend.FEATHER.value)
    parser.add_argument("--prior-steps", type=int, help="prior sampling steps (default: all)")
    parser.add_argument("--seed", type=int, help="seed of the prior's sampler")
    parser.add_argument(
        "--self-ensemble",
        type=int,
        help="average 2, 4 or 8 flipped/turned copies of each tile (that many times the"
        " compute; default: SWINTORMER_SELF_ENSEMBLE, 1 = off)",
    )
    parser.add_argument(
        "--refine-blur",
        action=argparse.BooleanOptionalAction,
        help="restore twice, the second time with the blur the first result explains (about"
        " 2x the compute; models with a defocus front end; default: SWINTORMER_REFINE_BLUR)",
    )
    parser.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality, 1-100")
    parser.add_argument(
        "--defocus-map",
        type=Path,
        help="also write the estimated defocus radius map here (16-bit PNG, 0.001 px per level;"
        " models with a defocus front end)",
    )


def deblur(args: argparse.Namespace) -> tuple[int, int]:
    """Restore `args.image` into `args.output`; return the image's width and height.

    Raises:
        DeblurError: bad options, checkpoint or input.
    """
    output_format = format_for_suffix(args.output)
    if output_format is None:
        raise DeblurError(f"{args.output}: the output must end in .png, .jpg, .jpeg or .webp")
    if args.defocus_map is not None and args.defocus_map.suffix.lower() != ".png":
        raise DeblurError(f"{args.defocus_map}: the defocus map is a PNG; name it .png")
    overrides = {
        setting: getattr(args, option)
        for option, setting in SETTING_OF_OPTION.items()
        if getattr(args, option) is not None
    }
    try:
        settings = Settings(**overrides)
        options = DeblurOptions(
            output_format=output_format,
            quality=args.quality,
            prior_steps=args.prior_steps,
            seed=args.seed,
            self_ensemble=args.self_ensemble,
            refine_blur=args.refine_blur,
        )
        decoded = read_file(args.image)
        views = [decoded.rgb]
        if args.left_view is not None:
            views.append(read_file(args.left_view).rgb)
    except ValidationError as error:
        raise DeblurError(_first_problem(error)) from error
    except (ImageRefusedError, OSError) as error:
        raise DeblurError(str(error)) from error
    if len(views) == 2 and views[1].shape != views[0].shape:
        raise DeblurError(f"views differ in size: {views[0].shape} vs {views[1].shape}")

    runtime = Runtime(settings)
    try:
        runtime.setup()
        request = runtime.request_for(options, decoded.is_high_depth)
        request = replace(request, tiles=replace(request.tiles, blend=Blend(args.blend)))
        runtime.refuse_impossible(request)
    except (CheckpointError, CheckpointMissingError, ValueError) as error:
        raise DeblurError(str(error)) from error
    assert runtime.restorer is not None
    if runtime.restorer.image_channels != 3 * len(views):
        raise DeblurError(
            "this is a dual-pixel network: pass --left-view"
            if len(views) == 1
            else "--left-view is for dual-pixel (6-channel) networks only"
        )
    if args.defocus_map is not None and not runtime.estimates_blur:
        raise DeblurError(
            f"--defocus-map: {runtime.checkpoint} has no defocus front end, so it estimates no"
            " blur (a model preset ending in -defocus has one)"
        )
    outcome = runtime(np.concatenate(views, axis=2), request, draw_progress)
    end_progress()
    encoded, _ = encode(
        outcome.rgb, decoded, output_format, options.quality, settings.png_compress_level
    )
    write_atomically(args.output, encoded)
    if args.defocus_map is not None:
        assert outcome.radius_px is not None
        write_atomically(
            args.defocus_map, encode_defocus_map(outcome.radius_px, settings.png_compress_level)
        )
    if outcome.radius_px is not None:
        print(describe_blur(summarize(outcome.radius_px)))
    height, width = outcome.rgb.shape[:2]
    return width, height


def describe_blur(blur: BlurEstimate) -> str:
    """One line for people: the estimated blur, as the job status reports it."""
    return (
        f"estimated blur: median radius {blur.median_radius_px:.2f} px, 90th percentile "
        f"{blur.p90_radius_px:.2f} px, in focus (< {blur.in_focus_below_px:g} px) "
        f"{100 * blur.in_focus_fraction:.0f}% of the image"
    )


def _first_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    where = ".".join(str(part) for part in problem.get("loc", ()))
    return f"{where}: {problem.get('msg', 'invalid')}"


def run(args: argparse.Namespace) -> int:
    """Restore `args.image` into `args.output`; 1 on a bad option, checkpoint or input."""
    try:
        width, height = deblur(args)
    except DeblurError as error:
        print(f"swintormer deblur: {error}")
        return 1
    print(f"wrote {args.output} ({width}x{height})")
    if args.defocus_map is not None:
        print(f"wrote {args.defocus_map} (defocus radius: grey level x {PX_PER_LEVEL:g} px)")
    return 0
