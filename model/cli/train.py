"""`swintormer train --config configs/NAME.toml [--set section.key=value ...] [--resume]`.

Progress lines go to stdout and to `<out_dir>/train.log`. SIGINT or SIGTERM (Ctrl-C, a batch
scheduler's time limit, preemption) finishes the current step, writes a checkpoint and exits with
status 3; the same command with `--resume` continues from there.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from model.training.config import TrainConfigError, load_train_config

EXIT_STOPPED = 3  # interrupted after a checkpoint: rerun with --resume


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `swintormer train`."""
    parser.add_argument("--config", required=True, type=Path, help="training TOML file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one configuration value (TOML syntax, type checked); repeatable",
    )
    parser.add_argument("--resume", action="store_true", help="continue from <out_dir>/resume.pt")


def run(args: argparse.Namespace) -> int:
    """Train; 0 when every stage finished, 3 when stopped early, 2 on a bad configuration."""
    try:
        config = load_train_config(args.config, args.overrides)
    except TrainConfigError as err:
        print(f"swintormer train: {err}", file=sys.stderr)
        return 2
    from model.training.train import (
        train,  # torch loads only once the configuration is known to be good
    )

    out_dir = Path(config.run.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stop_requested: list[int] = []

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop_requested.append(signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with (out_dir / "train.log").open("a") as log_file:

        def log(line: str) -> None:
            stamped = f"{time.strftime('%H:%M:%S')} {line}"
            print(stamped, flush=True)
            log_file.write(stamped + "\n")
            log_file.flush()

        log(f"swintormer train --config {args.config} {' '.join(args.overrides)}".rstrip())
        try:
            result = train(
                config, resume=args.resume, should_stop=lambda: bool(stop_requested), log=log
            )
        except TrainConfigError as err:
            print(f"swintormer train: {err}", file=sys.stderr)
            return 2
        log(
            f"done: step {result.step}/{result.total_steps}, {result.steps_per_s:.3f} steps/s,"
            f" {result.wall_s:.0f} s this run, best validation {result.best_val_psnr:.2f} dB"
        )
    return 0 if result.finished else EXIT_STOPPED
