"""`swintormer deblur` as an earlier commit ran it and as today's does, on one image: a table.

    python -m bench.then_and_now [--commit 5573eab] [--image-px 1024] [--repeats 3] [--threads 2]
        [--checkpoint weights/default.safetensors]

Issue #18 asks for the default model at 3x the megapixels per second of the path it was filed
against. The default is 5573eab, the last commit before its first fix. The earlier tree is
unpacked with `git archive` into a temporary folder. Both sides then run as the `python -m
swintormer deblur` a user types, each in its own process, in turns, on one photo-like PNG
(`bench.cpu_precision.photo_like_image`). They use this interpreter and its packages, the same
checkpoint file and `--threads` torch threads (`SWINTORMER_CPU_THREADS`). Each side runs with its
own default settings: today's picks bf16 on CPUs with native bf16 (`SWINTORMER_CPU_PRECISION=auto`).

Reported per side: the median wall-clock seconds of the whole command (start-up, model load,
decode, tiled restoration, PNG encode), megapixels per second, today's speed over the earlier
one, and the PSNR of today's output against the earlier output.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.cpu_precision import photo_like_image
from model.evaluation.metrics import psnr
from service.codec import read_file

REPO_ROOT = Path(__file__).resolve().parents[1]
BEFORE_ISSUE_18 = "5573eab"  # the last commit before issue #18's first fix


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.then_and_now", description=__doc__)
    parser.add_argument("--commit", default=BEFORE_ISSUE_18, help="the earlier tree")
    parser.add_argument("--image-px", type=int, default=1024, help="side of the square image")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per run")
    parser.add_argument(
        "--checkpoint", type=Path, default=REPO_ROOT / "weights/default.safetensors"
    )
    return parser.parse_args(argv)


def unpack_commit(commit: str, into: Path) -> None:
    """Write the tree of `commit` (this repository's history) into `into`."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", commit],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def run_deblur(tree: Path, image: Path, output: Path, checkpoint: Path, threads: int) -> float:
    """Wall-clock seconds of `python -m swintormer deblur` with the code of `tree`."""
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "OMP_NUM_THREADS": str(threads),
        "SWINTORMER_CPU_THREADS": str(threads),
    }
    command = [sys.executable, "-m", "swintormer", "deblur", str(image), "-o", str(output)]
    command += ["--checkpoint", str(checkpoint.resolve())]
    start = time.perf_counter()
    subprocess.run(
        command,
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="then_and_now_") as scratch:
        folder = Path(scratch)
        then_tree = folder / "then"
        unpack_commit(args.commit, then_tree)
        trees = {args.commit: then_tree, "today": REPO_ROOT}
        image = folder / "input.png"
        rgb = photo_like_image(args.image_px)
        Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(image)
        times: dict[str, list[float]] = {side: [] for side in trees}
        for _ in range(args.repeats):
            for side, tree in trees.items():
                output = folder / f"{side}.png"
                times[side].append(run_deblur(tree, image, output, args.checkpoint, args.threads))
        today, then = (read_file(folder / f"{side}.png").rgb for side in ("today", args.commit))
        versus = psnr(today, then, 0)
    megapixels = args.image_px**2 / 1e6
    then_s = statistics.median(times[args.commit])
    print(
        f"`swintormer deblur`, {args.image_px} x {args.image_px} PNG, {args.checkpoint.name},"
        f" {args.threads} thread(s), {args.repeats} interleaved runs per side"
    )
    print("| code | median s | MP/s | speed vs then |")
    print("|---|---:|---:|---:|")
    for side in trees:
        seconds = statistics.median(times[side])
        print(f"| {side} | {seconds:.2f} | {megapixels / seconds:.4f} | {then_s / seconds:.2f}x |")
    print(f"\ntoday's output against {args.commit}'s: {versus:.2f} dB PSNR")


if __name__ == "__main__":
    main()
