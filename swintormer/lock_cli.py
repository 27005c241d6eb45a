"""`swintormer lock`: write the pinned runtime requirements that Dockerfile.gpu installs."""

from __future__ import annotations

import argparse
from pathlib import Path

from swintormer.lock import LockError, render_lock, runtime_pins


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("deploy/requirements.lock"),
        help="file to write (default deploy/requirements.lock)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        pins = runtime_pins()
    except LockError as error:
        print(f"swintormer lock: {error}; run `make setup` first")
        return 1
    args.output.write_text(render_lock(pins))
    print(f"wrote {len(pins)} pins to {args.output}")
    return 0
