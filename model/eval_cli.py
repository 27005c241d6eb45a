"""`swintormer eval`: score a checkpoint beside the classical baselines.

    swintormer eval                                   # baselines on the synthetic set
    swintormer eval --checkpoint weights/x.safetensors --out runs/eval
    swintormer eval --set dpdd /data/dpdd --checkpoint weights/x.safetensors

Prints the Markdown tables; `--out DIR` also writes `eval.md` and `eval.json` (per-image scores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from model.baselines import unsharp_mask
from model.dpdd import Split
from model.eval_set import (
    CROP_PX,
    EVAL_NOISE_SIGMAS,
    EVAL_PHOTOS,
    EVAL_RADII_PX,
    EVAL_SEED,
    EvalSetError,
    dpdd_cases,
    load_eval_photos,
    synthetic_cases,
)
from model.evaluate import (
    MethodResult,
    baseline_results,
    evaluate_stream,
    report_json,
    report_markdown,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `swintormer eval`."""
    parser.add_argument("--checkpoint", type=Path, default=None, help="model to score (optional)")
    parser.add_argument(
        "--set",
        dest="eval_set",
        choices=("synthetic", "dpdd"),
        default="synthetic",
        help="synthetic: bundled photos blurred by known disks; dpdd: the DPDD dataset at PATH",
    )
    parser.add_argument("path", nargs="?", type=Path, help="DPDD root folder (with --set dpdd)")
    parser.add_argument("--split", choices=[s.value for s in Split], default="test")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N images")
    parser.add_argument("--crop-px", type=int, default=CROP_PX, help="synthetic crop side")
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help="synthetic noise seed")
    parser.add_argument("--out", type=Path, default=None, help="write eval.md and eval.json here")


def _validate(args: argparse.Namespace) -> str | None:
    if args.eval_set == "dpdd" and args.path is None:
        return "--set dpdd needs the DPDD root folder: swintormer eval --set dpdd PATH"
    if args.eval_set == "synthetic" and args.path is not None:
        return f"unexpected PATH {args.path} for the synthetic set (it is built in)"
    if args.checkpoint is not None and not args.checkpoint.is_file():
        return f"checkpoint {args.checkpoint} not found"
    if args.limit is not None and args.limit < 1:
        return "--limit must be >= 1"
    return None


def _synthetic(args: argparse.Namespace) -> tuple[list[MethodResult], dict[str, Any]]:
    photos = load_eval_photos(EVAL_PHOTOS[: args.limit], args.crop_px)
    cases = synthetic_cases(photos, EVAL_RADII_PX, EVAL_NOISE_SIGMAS, args.seed)
    metadata = {
        "set": "synthetic",
        "photos": [name for name, _ in photos],
        "crop_px": args.crop_px,
        "radii_px": list(EVAL_RADII_PX),
        "noise_sigmas": list(EVAL_NOISE_SIGMAS),
        "seed": args.seed,
    }
    return baseline_results(cases), metadata


def _dpdd(args: argparse.Namespace) -> tuple[list[MethodResult], dict[str, Any]]:
    split = Split(args.split)
    methods = [
        ("input (blurred)", lambda case: case.blurry[..., :3]),
        ("unsharp mask", lambda case: unsharp_mask(case.blurry[..., :3])),
    ]
    results = evaluate_stream(methods, dpdd_cases(args.path, split, limit=args.limit))
    return results, {"set": "dpdd", "root": str(args.path), "split": split.value}


def run(args: argparse.Namespace) -> int:
    """Build the set, score every row, print (and optionally write) the report."""
    problem = _validate(args)
    if problem:
        print(f"swintormer eval: {problem}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        results, metadata = _synthetic(args) if args.eval_set == "synthetic" else _dpdd(args)
    except (EvalSetError, FileNotFoundError) as error:
        print(f"swintormer eval: {error}", file=sys.stderr)
        return 2
    metadata["seconds"] = round(time.perf_counter() - start, 1)
    markdown = report_markdown(results, f"{metadata['set']} evaluation")
    print(markdown)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "eval.md").write_text(markdown)
        report = report_json(results, metadata)
        (args.out / "eval.json").write_text(json.dumps(report, indent=1, allow_nan=True) + "\n")
    return 0
