"""One command for a lent GPU: the GPU check, then a defocus fine-tune sized to the time left.

    python -m bench.gpu_session OUT [--total-s 575] [--check-s 300] [--probe-s 30]
        [--packed-cache DIR] [--device cuda] [--quick] [--train-set KEY=VALUE ...]

A GPU is lent here for minutes at a time, once, for one prepared command. This runs, under one
deadline: (1) `bench.jpeg_cache unpack` when `--packed-cache` is given and `data/cache` is
missing; (2) `bench.gpu_check` (its table to OUT/gpu_check.md, JSON to OUT/gpu_check.json),
whose training probe measures the fine-tune's steps/s on this GPU, and `bench.fused_attention`
(its table appended to the same file); (3) `swintormer train --config
configs/lite_defocus_gpu.toml` with both stages' step counts set from that rate so that stage 2,
the learning-rate decays and the validations end before the deadline (`run.max_wall_s` stops
it in any case; a probe that failed under bf16 autocast switches training to float32). The
checkpoints it writes (best, last; as shipped, in float16) and every log land in OUT: at most
eight files, as the device tool brings back. Each step runs under a time limit, so one that
hangs costs only its share. `--device cpu --quick` with small `--train-set` sizes is a smoke
test of the whole sequence on a CPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TRAIN_CONFIG = "configs/lite_defocus_gpu.toml"
TRAIN_OUT = Path("runs/lite_defocus_gpu")
STARTUP_S = 35.0  # model, photos and data workers before the first training step
STAGE1_SHARE = 0.7  # of the training seconds; stage 2 gets the rest less validations
STAGE2_SPEEDUP = 1.2  # stage 2 (prior + decoder) steps run faster than stage 1's (CPU: 1.3)
FALLBACK_STEPS_PER_S = 3.0  # when the probe measured nothing
SHIP = "import sys; from model.training.train import ship; ship(sys.argv[1], sys.argv[2])"


class Session:
    """The deadline and the log of one session."""

    def __init__(self, out: Path, total_s: float) -> None:
        self.out = out
        self.deadline = time.monotonic() + total_s
        self.log_path = out / "session.log"

    def left_s(self) -> float:
        return self.deadline - time.monotonic()

    def log(self, line: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} [{self.left_s():6.0f} s left] {line}"
        print(stamped, flush=True)
        with self.log_path.open("a") as file:
            file.write(stamped + "\n")

    def run(self, args: list[str], limit_s: float, stdout: Path, stderr: Path | None = None) -> int:
        """Run `args` for at most `limit_s` seconds (and never past the deadline)."""
        limit = max(1, int(min(limit_s, self.left_s())))
        self.log(f"run ({limit} s): {' '.join(args)}")
        with stdout.open("a") as out, (stderr or stdout).open("a") as err:
            try:
                code = subprocess.run(
                    args, stdout=out, stderr=err, timeout=limit, check=False
                ).returncode
            except subprocess.TimeoutExpired:
                code = 124
            except OSError as error:  # not installed here (nvidia-smi on a CPU machine)
                err.write(f"{error}\n")
                code = 127
        self.log(f"exit {code}")
        return code


def probe_result(check_json: Path) -> dict[str, Any] | None:
    """The training probe's row of the GPU check's JSON, or None when there is none."""
    try:
        document = json.loads(check_json.read_text())
    except (OSError, ValueError):
        return None
    rows = document.get("results", document) if isinstance(document, dict) else document
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, dict) and str(row.get("check", "")).startswith("train"):
            return row
    return None


def stage_steps(steps_per_s: float, train_s: float) -> tuple[int, int]:
    """Stage 1 and stage 2 step counts that fit `train_s` seconds at `steps_per_s` (stage 1)."""
    stage1 = int(steps_per_s * train_s * STAGE1_SHARE)
    stage2 = int(steps_per_s * STAGE2_SPEEDUP * train_s * (0.95 - STAGE1_SHARE))
    return max(stage1, 50), max(stage2, 20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the logs, table and checkpoints")
    parser.add_argument("--total-s", type=float, default=575.0, help="deadline for everything")
    parser.add_argument("--check-s", type=float, default=300.0, help="time for the GPU check")
    parser.add_argument("--probe-s", type=float, default=30.0, help="training probe inside it")
    parser.add_argument("--packed-cache", type=Path, help="bench.jpeg_cache pack output")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--device", default="cuda", help="cpu: a smoke test of this script")
    parser.add_argument("--quick", action="store_true", help="the check's --quick sizes")
    parser.add_argument(
        "--train-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra `swintormer train --set` overrides (also given to the probe)",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    session = Session(args.out, args.total_s)
    py = args.python
    session.log(f"python {py}")
    session.run(["nvidia-smi"], 20, args.out / "session.log")

    if args.packed_cache and not Path("data/cache/patches.json").is_file():
        session.run(
            [py, "-m", "bench.jpeg_cache", "unpack", str(args.packed_cache), "data/cache"],
            60,
            args.out / "session.log",
        )

    check_json = args.out / "gpu_check.json"
    session.run(
        [
            *(py, "-m", "bench.gpu_check", "--device", args.device),
            *("--budget-s", str(int(args.check_s - 15)), "--json", str(check_json)),
            *("--train-config", TRAIN_CONFIG, "--train-probe-s", str(int(args.probe_s))),
            *(["--quick"] if args.quick else []),
            *(part for o in args.train_set for part in ("--train-set", o)),
        ],
        args.check_s,
        args.out / "gpu_check.md",
        args.out / "gpu_check.log",
    )

    session.run(
        [py, "-m", "bench.fused_attention", "--device", args.device, "--tiles", "16"],
        30,
        args.out / "gpu_check.md",
        args.out / "gpu_check.log",
    )

    probe = probe_result(check_json)
    overrides = [f'run.device="{args.device}"', *args.train_set]
    rate = float(probe.get("steps_per_s") or 0.0) if probe else 0.0
    if not probe or probe.get("status") != "PASS" or rate <= 0:
        session.log(f"training probe did not pass ({probe}); training in float32")
        overrides.append('run.amp="off"')
        rate = rate if rate > 0 else FALLBACK_STEPS_PER_S
    train_s = session.left_s() - 20.0 - STARTUP_S  # 20 s to copy the results
    stage1, stage2 = stage_steps(rate, train_s)
    overrides += [
        f"stages.stage1_steps={stage1}",
        f"stages.stage2_steps={stage2}",
        f"run.val_every={max(50, (stage1 + stage2) // 12)}",
        f"run.max_wall_s={train_s + STARTUP_S - 5:.0f}",
    ]
    session.log(f"probe {rate:.2f} steps/s, {train_s:.0f} s to train: {overrides}")
    shutil.rmtree(TRAIN_OUT, ignore_errors=True)
    session.run(
        [py, "-m", "swintormer", "train", "--config", TRAIN_CONFIG]
        + [part for o in overrides for part in ("--set", o)],
        session.left_s() - 15.0,
        args.out / "train.log",
    )
    for name in ("best.safetensors", "last.safetensors"):
        if (TRAIN_OUT / name).is_file():  # as shipped (float16): 15 MB, under the 16 MiB a file
            session.run(
                [py, "-c", SHIP, str(TRAIN_OUT / name), str(args.out / name)],
                60,
                args.out / "session.log",
            )
    session.log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
