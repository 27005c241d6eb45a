"""`swintormer eval`: score a checkpoint beside the classical baselines.

    swintormer eval                                   # baselines on the synthetic set
    swintormer eval --checkpoint weights/x.safetensors --out runs/eval
    swintormer eval --set layered --checkpoint weights/x.safetensors   # spatially varying blur
    swintormer eval --set dpdd /data/dpdd --checkpoint weights/x.safetensors

With a checkpoint that has the defocus front end, a table of the blur estimator's error (mean
absolute radius error in px per cell, on the deployed tiles) follows the scores (with
`--refine-blur`, the deployed path refines the blur as `refine_blur` jobs do, `model.reblur`,
and the refined map's error table follows);
`--estimator-only` prints that table alone, to follow an estimator while it trains (no
restoration runs: about 2 minutes a set on one loaded core).

Prints the Markdown tables; `--out DIR` also writes `eval.md` and `eval.json` (per-image scores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from model.checkpoint import CheckpointError
from model.data.dpdd import Split
from model.evaluation.baselines import unsharp_mask
from model.evaluation.cases import (
    CROP_PX,
    EVAL_NOISE_SIGMAS,
    EVAL_PHOTOS,
    EVAL_RADII_PX,
    EVAL_SEED,
    LAYERED_LAYERS,
    LAYERED_SEED,
    EvalCase,
    EvalSetError,
    dpdd_cases,
    layered_cases,
    load_eval_photos,
    synthetic_cases,
)
from model.evaluation.evaluate import (
    CaseFn,
    MethodResult,
    baseline_results,
    evaluate_cases,
    evaluate_stream,
    radius_error_markdown,
    radius_errors,
    report_json,
    report_markdown,
)
from model.evaluation.model_rows import model_rows, restorer_fn
from model.reblur import REFINE_BY_DEFAULT
from model.restorer import Restorer, load_restorer
from model.self_ensemble import ENSEMBLE_SIZES
from model.tiling import TileSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `swintormer eval`."""
    parser.add_argument("--checkpoint", type=Path, default=None, help="model to score (optional)")
    parser.add_argument(
        "--set",
        dest="eval_set",
        choices=("synthetic", "layered", "dpdd"),
        default="synthetic",
        help=(
            "synthetic: bundled photos blurred by known disks; layered: the same photos with "
            "spatially varying blur (depth layers, known radius maps); dpdd: DPDD at PATH"
        ),
    )
    parser.add_argument("path", nargs="?", type=Path, help="DPDD root folder (with --set dpdd)")
    parser.add_argument("--split", choices=[s.value for s in Split], default="test")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images")
    parser.add_argument("--crop-px", type=int, default=CROP_PX, help="synthetic crop side")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help=f"synthetic set's seed (default {EVAL_SEED}; layered: {LAYERED_SEED})",
    )
    parser.add_argument("--out", type=Path, default=None, help="write eval.md and eval.json here")
    model = parser.add_argument_group("model rows (with --checkpoint)")
    model.add_argument("--ablations", action="store_true", help="prior off/on, T, tiling rows")
    model.add_argument(
        "--estimator-only",
        action="store_true",
        help="only the blur estimator's radius error (a model with the defocus front end)",
    )
    model.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    model.add_argument("--tile-px", type=int, default=TileSettings.tile_px)
    model.add_argument("--overlap-px", type=int, default=TileSettings.overlap_px)
    model.add_argument("--batch", type=int, default=TileSettings.batch, help="tiles per call")
    model.add_argument("--name", default=None, help="row label (default: checkpoint file stem)")
    model.add_argument(
        "--self-ensemble",
        type=int,
        nargs="+",
        choices=ENSEMBLE_SIZES,
        default=[],
        metavar="N",
        help="also score the deployed path averaged over N flipped/turned copies per tile"
        " (2, 4, 8; several sizes give one row each)",
    )
    model.add_argument(
        "--refine-blur",
        action=argparse.BooleanOptionalAction,
        default=REFINE_BY_DEFAULT,
        help="whether the deployed path refines the blur by re-blurring a first restoration"
        " (model.reblur: two passes; the service's default: off); --ablations adds the other",
    )


def _validate(args: argparse.Namespace) -> str | None:
    if args.eval_set == "dpdd" and args.path is None:
        return "--set dpdd needs the DPDD root folder: swintormer eval --set dpdd PATH"
    if args.eval_set != "dpdd" and args.path is not None:
        return f"unexpected PATH {args.path} for the {args.eval_set} set (it is built in)"
    if args.checkpoint is not None and not args.checkpoint.is_file():
        return f"checkpoint {args.checkpoint} not found"
    if args.limit is not None and args.limit < 1:
        return "--limit must be >= 1"
    if args.estimator_only and (args.checkpoint is None or args.eval_set == "dpdd"):
        return "--estimator-only needs --checkpoint and a set with radius maps (synthetic, layered)"
    return None


def _model_methods(args: argparse.Namespace, restorer: Restorer | None) -> list[tuple[str, CaseFn]]:
    """(label, case -> restored) for every model row; the input is dual-pixel for C_in = 6."""
    if restorer is None:
        return []
    tiles = TileSettings(args.tile_px, args.overlap_px, args.batch)
    name = args.name or args.checkpoint.stem
    use_dual_pixel = restorer.image_channels == 6
    methods: list[tuple[str, CaseFn]] = []
    rows = model_rows(restorer, name, tiles, args.ablations, args.self_ensemble, args.refine_blur)
    for row in rows:
        fn = restorer_fn(restorer, row, args.device)

        def method(case: EvalCase, fn: Any = fn) -> Any:
            image = case.dual_pixel if use_dual_pixel else case.blurry
            if image is None:
                raise EvalSetError(
                    f"{case.image_name} has no dual-pixel views for a 6-channel model"
                )
            return fn(image, case.radius_map)

        methods.append((row.label, method))
    return methods


def _synthetic(
    args: argparse.Namespace, restorer: Restorer | None
) -> tuple[list[MethodResult], dict[str, Any]]:
    if restorer is not None and restorer.image_channels != 3:
        raise EvalSetError(
            "the synthetic set has no dual-pixel views: score 6-channel models on --set dpdd"
        )
    photos = load_eval_photos(EVAL_PHOTOS[: args.limit], args.crop_px)
    metadata: dict[str, Any] = {
        "set": args.eval_set,
        "photos": [name for name, _ in photos],
        "crop_px": args.crop_px,
        "noise_sigmas": list(EVAL_NOISE_SIGMAS),
    }
    if args.eval_set == "layered":
        seed = LAYERED_SEED if args.seed is None else args.seed
        cases = layered_cases(photos, EVAL_NOISE_SIGMAS, seed)
        metadata |= {"seed": seed, "layers": LAYERED_LAYERS}
    else:
        seed = EVAL_SEED if args.seed is None else args.seed
        cases = synthetic_cases(photos, EVAL_RADII_PX, EVAL_NOISE_SIGMAS, seed)
        metadata |= {"seed": seed, "radii_px": list(EVAL_RADII_PX)}
    if args.estimator_only:
        if restorer is None or restorer.defocus is None:
            raise EvalSetError("--estimator-only: the checkpoint has no defocus front end")
        tiles = TileSettings(args.tile_px, args.overlap_px, args.batch)
        errors = radius_errors(restorer, cases, tiles, args.device)
        return [], metadata | {"radius_error_px": errors}
    results = baseline_results(cases)
    for label, method in _model_methods(args, restorer):
        start = time.perf_counter()
        results.append(evaluate_cases(method, cases, label))
        results[-1].notes["all"] = f"{time.perf_counter() - start:.1f} s for {len(cases)} images"
    if restorer is not None and restorer.defocus is not None:
        tiles = TileSettings(args.tile_px, args.overlap_px, args.batch)
        errors = radius_errors(restorer, cases, tiles, args.device)
        metadata["radius_error_px"] = errors
        if args.refine_blur:
            refined = radius_errors(restorer, cases, tiles, args.device, refine_blur=True)
            metadata["refined_radius_error_px"] = refined
    return results, metadata


def _dpdd(
    args: argparse.Namespace, restorer: Restorer | None
) -> tuple[list[MethodResult], dict[str, Any]]:
    split = Split(args.split)
    use_dual_pixel = restorer is not None and restorer.image_channels == 6
    methods: list[tuple[str, CaseFn]] = [
        ("input (blurred)", lambda case: case.blurry),
        ("unsharp mask", lambda case: unsharp_mask(case.blurry)),
        *_model_methods(args, restorer),
    ]
    cases = dpdd_cases(args.path, split, use_dual_pixel, limit=args.limit)
    results = evaluate_stream(methods, cases)
    return results, {"set": "dpdd", "root": str(args.path), "split": split.value}


def run(args: argparse.Namespace) -> int:
    """Build the set, score every row, print (and optionally write) the report."""
    problem = _validate(args)
    if problem:
        print(f"swintormer eval: {problem}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        restorer = None
        if args.checkpoint is not None:
            restorer = load_restorer(args.checkpoint, torch.device(args.device))
        build = _dpdd if args.eval_set == "dpdd" else _synthetic
        results, metadata = build(args, restorer)
    except (EvalSetError, FileNotFoundError, CheckpointError, ValueError) as error:
        print(f"swintormer eval: {error}", file=sys.stderr)
        return 2
    metadata["checkpoint"] = str(args.checkpoint) if args.checkpoint is not None else None
    metadata["seconds"] = round(time.perf_counter() - start, 1)
    markdown = report_markdown(results, f"{metadata['set']} evaluation") if results else ""
    if "radius_error_px" in metadata:
        markdown += ("\n" if markdown else "") + radius_error_markdown(metadata["radius_error_px"])
    if "refined_radius_error_px" in metadata:
        refined = metadata["refined_radius_error_px"]
        markdown += "\n" + radius_error_markdown(refined, "Refined blur (model.reblur)")
    print(markdown)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "eval.md").write_text(markdown)
        report = report_json(results, metadata)
        (args.out / "eval.json").write_text(json.dumps(report, indent=1, allow_nan=True) + "\n")
    return 0
