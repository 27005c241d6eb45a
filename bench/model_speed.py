"""Speed and memory of the Swintormer network on the CPU; prints markdown tables.

    python -m bench.model_speed [--threads N] [--repeats R] [--sweep-preset tiny]

1. Speed: our `Swintormer` against `bench.released_style` (the released computation: bias and
   mask rebuilt per call, unfused softmax_one, NCHW reshapes) on the same weights and input,
   runs interleaved, medians; the ratio is measured in the same run. Also ms per megapixel of
   the other presets.
2. Peak memory: each measurement runs in a fresh subprocess and reports the growth of its
   resident set during the forward (peak RSS minus the RSS just before it), so the numbers
   include everything torch allocates, not just Python objects. The peak is /proc's VmHWM,
   reset through /proc/self/clear_refs just before the forward: `ru_maxrss` would not do,
   Linux carries the parent's high-water mark into a child across fork and exec.
3. Tiled versus whole-image memory from 0.25 to 16 MP (`--sweep-preset`, default `tiny` so it
   finishes in minutes): tiled growth stays flat apart from the output image itself, while
   whole-image growth is proportional to the pixels.

Timings on a shared machine are noisy: compare the ratios, which come from one run.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from bench.released_style import ReleasedStyleSwintormer
from model.config import PRESETS, preset
from model.released import to_released_state_dict
from model.swintormer import Swintormer
from model.tiling import TileSettings, restore_tiled

REPO_ROOT = Path(__file__).resolve().parents[1]
MODES = ("ours", "released-style", "tiled")
SWEEP_SIDES = {0.25: 512, 1: 1024, 4: 2048, 16: 4096}  # megapixels -> square side
TILING = TileSettings()  # the deployment default: 256 px tiles, 32 px overlap, batch 4


def networks(name: str) -> tuple[Swintormer, ReleasedStyleSwintormer]:
    """Our network (random init, seed 0) and the released-style one with the same weights."""
    torch.manual_seed(0)
    ours = Swintormer(preset(name)).eval()
    baseline = ReleasedStyleSwintormer(preset(name)).eval()
    baseline.load_state_dict(to_released_state_dict(ours.state_dict()), strict=True)
    return ours, baseline


def _seconds(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall-clock, process CPU) seconds of one call.

    With one thread, CPU time is the work done whatever else the machine runs; wall-clock time
    on a shared machine also counts the time other processes held the core.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _medians(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def speed_table(repeats: int) -> list[str]:
    """Paper preset: ours vs released-style, interleaved; other presets: ours alone."""
    rows = [
        "| preset | input | path | median wall ms | median CPU ms | CPU ms/MP "
        "| speed-up (CPU) | speed-up (wall) | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ours, baseline = networks("paper")
    for batch in (1, 4):  # one image, and one batch of four 256 px tiles (tiled inference)
        rows += _comparison_rows(ours, baseline, batch, repeats)
    for name in ("base", "lite"):
        rows.append(_preset_row(name, repeats, 256 * 256 / 1e6))
    return rows


def _comparison_rows(
    ours: Swintormer, baseline: ReleasedStyleSwintormer, batch: int, repeats: int
) -> list[str]:
    """Ours vs released-style on the same (batch, 6, 256, 256) input, runs interleaved."""
    image = torch.rand(batch, 6, 256, 256, generator=torch.Generator().manual_seed(1))
    megapixels = batch * 256 * 256 / 1e6
    with torch.inference_mode():
        difference = (ours(image) - baseline(image)).abs().max().item()  # also the warm-up
        samples: dict[str, list[tuple[float, float]]] = {"ours": [], "released-style": []}
        for _ in range(repeats):
            samples["ours"].append(_seconds(lambda: ours(image)))
            samples["released-style"].append(_seconds(lambda: baseline(image)))
    medians = {path: _medians(values) for path, values in samples.items()}
    reference_wall, reference_cpu = medians["released-style"]
    return [
        f"| paper | {batch}x6x256x256 | {path} | {wall * 1e3:.0f} | {cpu * 1e3:.0f} | "
        f"{cpu * 1e3 / megapixels:.0f} | {reference_cpu / cpu:.2f}x | "
        f"{reference_wall / wall:.2f}x | {difference:.1e} |"
        for path, (wall, cpu) in medians.items()
    ]


def _preset_row(name: str, repeats: int, megapixels: float) -> str:
    torch.manual_seed(0)
    network = Swintormer(preset(name)).eval()
    image = torch.rand(1, 3, 256, 256)
    with torch.inference_mode():
        network(image)
        wall, cpu = _medians([_seconds(lambda: network(image)) for _ in range(repeats)])
    return (
        f"| {name} | 1x3x256x256 | ours | {wall * 1e3:.0f} | {cpu * 1e3:.0f} | "
        f"{cpu * 1e3 / megapixels:.0f} | | | |"
    )


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure_child(mode: str, name: str, side: int, threads: int) -> dict[str, float]:
    """In this (fresh) process: one forward; RSS growth over the pre-forward RSS, seconds."""
    torch.set_num_threads(threads)
    config = preset(name)
    image = torch.rand(1, config.in_channels, side, side)
    network: Callable[[Tensor], Tensor]
    if mode == "released-style":
        network = networks(name)[1]
    else:
        torch.manual_seed(0)
        network = Swintormer(config).eval()
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM to the current RSS
    before = _status_mb("VmRSS")
    start = time.perf_counter()
    with torch.inference_mode():
        if mode == "tiled":
            restore_tiled(network, image, TILING)
        else:
            network(image)
    seconds = time.perf_counter() - start
    return {"growth_mb": _status_mb("VmHWM") - before, "seconds": seconds}


def _measure(mode: str, name: str, side: int, threads: int) -> dict[str, float] | None:
    """`measure_child` in a fresh interpreter; None when it failed (e.g. out of memory)."""
    spec = json.dumps({"mode": mode, "name": name, "side": side, "threads": threads})
    result = subprocess.run(
        [sys.executable, "-m", "bench.model_speed", "--child", spec],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    measured: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def memory_table(threads: int) -> list[str]:
    """Peak memory of one 256x256 forward per path, each in a fresh process."""
    rows = ["| preset | input | path | RSS growth MB | s |", "|---|---|---|---|---|"]
    for name, mode in (("paper", "ours"), ("paper", "released-style"), ("lite", "ours")):
        measured = _measure(mode, name, 256, threads)
        channels = preset(name).in_channels
        cells = (
            f"{measured['growth_mb']:.0f} | {measured['seconds']:.2f}" if measured else "failed | "
        )
        rows.append(f"| {name} | 1x{channels}x256x256 | {mode} | {cells} |")
    return rows


def sweep_table(name: str, megapixels: list[float], max_whole_mp: float, threads: int) -> list[str]:
    """RSS growth of whole-image and tiled inference as the image grows."""
    rows = [
        f"| MP ({name}) | side | whole: RSS growth MB | whole s | tiled: RSS growth MB "
        "| tiled s | output image MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for mp in megapixels:
        side = SWEEP_SIDES.get(mp, int(math.sqrt(mp * 1e6)))
        output_mb = 3 * side * side * 4 / 2**20
        cells = []
        for mode in ("ours", "tiled"):
            if mode == "ours" and mp > max_whole_mp:
                cells.append(f"skipped (> {max_whole_mp:g} MP) | ")
                continue
            measured = _measure(mode, name, side, threads)
            cells.append(
                f"{measured['growth_mb']:.0f} | {measured['seconds']:.1f}"
                if measured
                else "failed (out of memory?) | "
            )
        rows.append(f"| {mp:g} | {side} | {cells[0]} | {cells[1]} | {output_mb:.0f} |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per path")
    parser.add_argument("--sweep-preset", choices=PRESETS, default="tiny")
    parser.add_argument(
        "--sweep-mp", type=float, nargs="+", default=[0.25, 1, 4, 16], help="megapixels"
    )
    parser.add_argument(
        "--max-whole-mp", type=float, default=16, help="skip whole-image runs above this"
    )
    parser.add_argument(
        "--skip", choices=("speed", "memory", "sweep"), nargs="*", default=[], help="sections"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(measure_child(spec["mode"], spec["name"], spec["side"], spec["threads"])))
        return 0
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.repeats} repeats\n")
    if "speed" not in args.skip:
        print("\n".join(speed_table(args.repeats)) + "\n")
    if "memory" not in args.skip:
        print("\n".join(memory_table(args.threads)) + "\n")
    if "sweep" not in args.skip:
        print(f"tiled: {TILING}")
        sweep = sweep_table(args.sweep_preset, args.sweep_mp, args.max_whole_mp, args.threads)
        print("\n".join(sweep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
