"""The one-command GPU check (issue #18): seven checks under one time budget, one markdown table.

    python -m bench.gpu_check [--device cuda] [--budget-s 420] [--json PATH] [--quick]
        [--skip CHECK ...] [--only CHECK ...] [--train-config PATH] [--train-probe-s 60]
        [--train-override SECTION.KEY=VALUE ...] [--compile-on-cpu] [--threads N]

Checks, in the order they run (the training probe comes before the two long measurements
because `bench/gpu_session.py` sizes a training run from it):

- environment: device name, torch and CUDA versions, compute capability, memory.
- parity: the released tiny network's golden vectors (tests/reference) on the device in float32
  with TF32 off, against the tolerance the unit tests use (1e-5); with TF32 on and through the
  autograd path for information.
- precision: the deployed models (`weights/default.safetensors`, `weights/lite_defocus.safetensors`)
  restore a seeded synthetic image (disk-blurred rectangles) tile by tile, as the worker calls them,
  in every precision of `model.devices.PRECISIONS`, float32 with TF32 on and off, and the worker's
  16-bit-input rule (`full_float32`). Value: the change of PSNR against the sharp image relative
  to float32 without TF32 (dB, negative = worse); detail: PSNR against that float32 output.
- oom: CUDA memory capped (`torch.cuda.set_per_process_memory_fraction`) so that a large tile batch
  runs out; `restore_tiled` must halve the batch, finish, and equal the uncapped output. On the CPU
  the out-of-memory errors are simulated, as tests/unit/model/test_tiling.py does.
- train_probe: the real `swintormer train` loop (`model.training.train.train`) of `--train-config`
  for `--train-probe-s` seconds on the device; steps/s excludes the first step (JSON key
  `steps_per_s`, read by `bench/gpu_session.py`). A missing data cache falls back to dead leaves.
- compile: the network compiled as the worker compiles it (`SWINTORMER_TORCH_COMPILE`, padded
  batches): compile time, speed-up against eager, output difference, graphs and recompiles over
  two image sizes. Skipped on the CPU unless `--compile-on-cpu`.
- throughput: MP/s and peak allocated memory per preset, tile batch and precision at 4 MP (median
  of 3 timed images after a warm-up, synchronised); `default` is the shipped checkpoint with its
  prior, the presets have random weights.

Each check runs isolated: an exception becomes a FAIL row with a one-line reason (the traceback
goes to stderr and into the JSON row), and the next check runs; within precision and throughput
each case is isolated too. Each check has a time budget (cooperative, with a hard SIGALRM stop
10 s later, so a hung check may overrun `--budget-s` by that much); once `--budget-s` is spent
the remaining checks are SKIPPED "(time)". Rows are printed (and the JSON rewritten) as they
come, so a killed run leaves what it measured. Everything a check changes process-wide (TF32,
threads, the CUDA memory cap) is put back after it. `--quick` uses tiny images, presets and a
5 s training probe on dead leaves: a CPU smoke test of this script (on a CPU shared with other
work pass `--threads 1`: torch's default of one thread a core stalls when a core is busy).
Only `model`, torch, numpy and the standard library are imported (and tests/reference, for the
golden vectors), so it runs where the service's dependencies are not installed.

JSON (`--json`): {"device", "torch", "budget_s", "quick", "started", "finished", "wall_s",
"results": [{"check", "case", "status", "value", "unit", "detail", "seconds", ...}]}; the
train_probe row carries `steps_per_s`, `samples_per_s`, `peak_vram_mib`; throughput rows
`mp_per_s` and `peak_vram_mib`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from bench.gpu_speed import sync
from model.checkpoint import network_from_state_dict
from model.config import model_preset, preset
from model.data.degrade import convolve
from model.devices import autocast, full_float32, set_tf32
from model.psf import disk_psf
from model.released import map_released_state_dict
from model.restorer import Restorer, build_restorer, load_restorer
from model.swintormer import Swintormer
from model.tiling import TileSettings, restore_tiled
from tests.reference import GOLDEN_CONFIG, load_golden, released_state

DEFAULT_WEIGHTS = Path("weights/default.safetensors")
DEFOCUS_WEIGHTS = Path("weights/lite_defocus.safetensors")
PARITY_TOLERANCE = 1e-5  # tests/unit/model/test_swintormer.py, golden output
PRECISION_LOSS_DB = 0.1  # a precision may cost at most this much PSNR against the sharp image
HIGH_DEPTH_TOLERANCE = 1e-4  # the 16-bit-input rule must reproduce float32 (kernel choice aside)
OOM_TOLERANCE = 1e-4  # capped run against uncapped run, float32 without TF32
COMPILE_TOLERANCE = 1e-2  # compiled against eager output (inductor reorders float arithmetic)
HARD_STOP_GRACE_S = 10.0  # a check's hard stop comes this long after its cooperative budget
MIN_CHECK_S = 3.0  # a check that would get less time is SKIPPED (time)
STATUSES = ("PASS", "FAIL", "SKIPPED")
# precision modes the CPU does not run, and why
CPU_SKIPS = {
    "fp32+tf32": "TF32 is CUDA only",
    "fp16": "the worker runs no CPU fp16",
    "high_depth": "the CPU runs 16-bit inputs in plain fp32: the fp32 row",
}


@dataclass
class Row:
    """One line of the table (and one entry of the JSON `results`)."""

    check: str
    case: str
    status: str  # PASS, FAIL or SKIPPED
    value: float | str | None = None
    unit: str = ""
    detail: str = ""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The row as plain values; `extra` keys (e.g. `steps_per_s`) at the top level."""
        row = {
            "check": self.check,
            "case": self.case,
            "status": self.status,
            "value": self.value,
            "unit": self.unit,
            "detail": self.detail,
            "seconds": round(self.seconds, 2),
            **self.extra,
        }
        # strict JSON has no inf or nan (an identical output's PSNR is inf)
        return {
            k: str(v) if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in row.items()
        }

    def markdown(self) -> str:
        """`| check | case | status | value | detail | s |`."""
        value = self.value
        shown = f"{value:.4g}" if isinstance(value, float) else ("" if value is None else value)
        shown = f"{shown} {self.unit}".strip() if shown != "" else ""
        detail = self.detail.replace("|", "/").replace("\n", " ")
        return (
            f"| {self.check} | {self.case} | {self.status} | {shown} | {detail} |"
            f" {self.seconds:.1f} |"
        )


TABLE_HEADER = "| check | case | status | value | detail | s |\n|---|---|---|---|---|---|"


@dataclass(frozen=True)
class Sizes:
    """Image sizes, tilings and grids of one mode (full on a GPU, `--quick` on a CPU)."""

    precision_image: tuple[int, int]  # (H, W)
    warm_up: bool  # one untimed tile per model before the timed runs (CUDA and cuDNN start-up)
    tiles: TileSettings
    oom_image: tuple[int, int]
    oom_tiles: TileSettings  # its batch is asked for under the cap (halved until it fits)
    compile_images: tuple[tuple[int, int], tuple[int, int]]  # partial last batch, then another
    compile_model: str  # "default" (the shipped checkpoint) or a model preset
    throughput_side: int  # square image side
    throughput_models: tuple[str, ...]  # "default" or network presets
    throughput_batches: tuple[int, ...]
    throughput_precisions: tuple[str, ...]
    throughput_repeats: int
    probe_s: float
    probe_startup_s: float  # model, data pipeline and final checkpoint around the probe's steps
    probe_overrides: tuple[str, ...]
    budgets_s: dict[str, float]


FULL = Sizes(
    precision_image=(1024, 1536),
    warm_up=True,
    tiles=TileSettings(256, 32, batch=16),
    oom_image=(1024, 1024),
    oom_tiles=TileSettings(256, 32, batch=32),
    compile_images=((1024, 1280), (768, 1024)),  # 30 tiles (16 + 14), 20 tiles (16 + 4)
    compile_model="default",
    throughput_side=2048,  # 4.2 MP
    throughput_models=("default", "lite", "base", "paper"),
    throughput_batches=(4, 16, 64),
    throughput_precisions=("fp32+tf32", "bf16"),
    throughput_repeats=3,
    probe_s=60.0,
    probe_startup_s=60.0,
    probe_overrides=(),
    budgets_s={
        "environment": 20,
        "parity": 30,
        "precision": 50,
        "oom": 30,
        "compile": 100,
        "throughput": 80,
    },
)
QUICK = Sizes(
    precision_image=(128, 128),
    warm_up=False,
    tiles=TileSettings(128, 32, batch=2),
    oom_image=(100, 150),
    oom_tiles=TileSettings(64, 16, batch=4),  # 6 tiles
    compile_images=((256, 320), (192, 256)),  # 9 tiles (4 + 4 + 1), 6 tiles (4 + 2)
    compile_model="tiny",
    throughput_side=256,  # 9 tiles of 128 px
    throughput_models=("tiny",),
    throughput_batches=(1, 4),
    throughput_precisions=("fp32",),
    throughput_repeats=1,
    probe_s=5.0,
    probe_startup_s=25.0,
    probe_overrides=(
        "data.patch_px=64",
        "data.batch=1",
        "data.val_pairs=1",
        'data.cache_dir=""',
        "data.dead_leaves_fraction=1.0",
        "run.data_workers=0",
    ),
    budgets_s={
        "environment": 10,
        "parity": 20,
        "precision": 40,
        "oom": 20,
        "throughput": 20,
        "compile": 120,
    },
)


@dataclass
class Context:
    """What every check reads: device, sizes, options and the deadlines."""

    device: torch.device
    sizes: Sizes
    deadline: float  # time.monotonic() when --budget-s is spent
    train_config: Path = Path("configs/lite_defocus_trust.toml")
    train_overrides: tuple[str, ...] = ()
    compile_on_cpu: bool = False
    check_deadline: float = math.inf  # the running check's cooperative budget

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def left_s(self) -> float:
        """Seconds left to the running check."""
        return min(self.deadline, self.check_deadline) - time.monotonic()


Check = Callable[[Context], Iterator[Row]]


class CheckTimeout(BaseException):
    """A check ran past its hard stop (BaseException: no `except Exception` swallows it)."""


def _psnr_db(image: Tensor, reference: Tensor) -> float:
    """PSNR of `image` against `reference`, both clamped to [0, 1]."""
    mse = (image.clamp(0, 1) - reference.clamp(0, 1)).double().pow(2).mean().item()
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def _max_abs(a: Tensor, b: Tensor) -> float:
    return float((a.float() - b.float()).abs().max().item())


def _peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def synthetic_pair(height: int, width: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A seeded sharp image of flat rectangles on a gradient and its 3 px disk blur.

    Returns:
        (sharp, blurry), each (1, 3, height, width) float32 in [0, 1].
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    sharp = np.stack([x, y, 1 - x], -1).astype(np.float32) * 0.5
    for _ in range(max(8, height * width // 4000)):
        y0, x0 = rng.integers(0, height), rng.integers(0, width)
        size = rng.integers(4, max(5, min(height, width) // 4))
        sharp[y0 : y0 + size, x0 : x0 + size] = rng.random(3)
    blurry = np.clip(convolve(sharp, disk_psf(3.0)), 0, 1)
    return _as_tensor(sharp), _as_tensor(blurry)


def _as_tensor(image: np.ndarray) -> Tensor:
    """(H, W, 3) array -> (1, 3, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()[None]


def restore_image(
    restorer: Restorer,
    image: Tensor,
    tiles: TileSettings,
    precision: Callable[[], contextlib.AbstractContextManager[object]],
    on_batch_halved: Callable[[int], None] | None = None,
) -> Tensor:
    """The worker's tiled restore (`worker.runtime.Runtime.restore_batch`): (1, 3 or 4, H, W).

    The precision context wraps each batch's model call, not the stitching, as in the worker;
    each tile's prior noise comes from its own generator seeded 0.
    """

    def restore_batch(batch: Tensor) -> Tensor:
        with precision():
            return restorer.run(batch, seed=0).stacked()

    with torch.inference_mode():
        return restore_tiled(
            restore_batch,
            image,
            tiles,
            out_channels=restorer.stacked_channels,
            on_batch_halved=on_batch_halved,
        )


def _precision_context(
    device: torch.device, name: str
) -> Callable[[], contextlib.AbstractContextManager[object]]:
    """`fp32`, `fp32+tf32`, `bf16`, `fp16` or `high_depth` (the worker's 16-bit-input rule)."""
    if name == "high_depth":
        return full_float32 if device.type == "cuda" else contextlib.nullcontext
    precision = name.removesuffix("+tf32")
    return lambda: autocast(device, precision)


def _set_precision_flags(device: torch.device, name: str) -> None:
    """TF32 off for plain `fp32`, on otherwise (the worker's default `tf32 = true`)."""
    if device.type == "cuda":
        set_tf32(name != "fp32")


def guarded(check: str, case: str, measure: Callable[[], Row]) -> Row:
    """`measure()`, or a FAIL row naming its exception: one case failing spares the others."""
    start = time.perf_counter()
    try:
        return measure()
    except Exception as error:
        return _failure_row(check, case, error, time.perf_counter() - start)


def _failure_row(check: str, case: str, error: Exception, seconds: float) -> Row:
    """A FAIL row: the exception's first line; the traceback to stderr and into the JSON."""
    trace = traceback.format_exc()
    print(trace, file=sys.stderr, flush=True)
    reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    return Row(check, case, "FAIL", detail=reason, seconds=seconds, extra={"traceback": trace})


# -- checks ------------------------------------------------------------------------------------


def check_environment(ctx: Context) -> Iterator[Row]:
    """Device name, versions, capability and memory."""
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
    }
    if ctx.is_cuda:
        props = torch.cuda.get_device_properties(ctx.device)
        name = props.name
        info |= {
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "multiprocessors": props.multi_processor_count,
            "bf16_supported": torch.cuda.is_bf16_supported(),
        }
    else:
        name = platform.processor() or platform.machine()
    detail = ", ".join(f"{key} {value}" for key, value in info.items())
    yield Row("environment", str(ctx.device), "PASS", name, detail=detail, extra=info)


def check_parity(ctx: Context) -> Iterator[Row]:
    """The released tiny network's golden output on the device."""
    golden = load_golden()
    state = map_released_state_dict(released_state(golden))
    network = network_from_state_dict(state, GOLDEN_CONFIG).to(ctx.device)
    blurry = torch.from_numpy(golden["input"]).to(ctx.device)
    expected = torch.from_numpy(golden["output"]).to(ctx.device)
    cases = [("fp32", False, False), ("fp32+tf32", True, False), ("fp32 autograd", False, True)]
    for case, tf32, autograd in cases:
        if tf32 and not ctx.is_cuda:
            yield Row("parity", case, "SKIPPED", detail="TF32 is CUDA only")
            continue
        start = time.perf_counter()
        if ctx.is_cuda:
            set_tf32(tf32)
        with torch.enable_grad() if autograd else torch.inference_mode():
            restored = network.train(autograd)(blurry).detach()
        sync(ctx.device)
        error = _max_abs(restored, expected)
        passed = tf32 or error <= PARITY_TOLERANCE
        note = "informational" if tf32 else f"tolerance {PARITY_TOLERANCE:g}"
        yield Row(
            "parity",
            case,
            "PASS" if passed else "FAIL",
            error,
            "max abs",
            f"released tiny golden {tuple(expected.shape)}, {note}",
            time.perf_counter() - start,
            {"max_abs": error, "tolerance": None if tf32 else PARITY_TOLERANCE},
        )


def check_precision(ctx: Context) -> Iterator[Row]:
    """Both deployed models, tiled, in every precision, against float32 without TF32."""
    sharp, blurry = synthetic_pair(*ctx.sizes.precision_image)
    sharp, blurry = sharp.to(ctx.device), blurry.to(ctx.device)
    tiles = ctx.sizes.tiles
    for weights in (DEFAULT_WEIGHTS, DEFOCUS_WEIGHTS):
        restorer = load_restorer(weights, device=ctx.device)
        name = weights.stem
        if ctx.sizes.warm_up:
            warm = blurry[..., : tiles.tile_px, : tiles.tile_px]
            restore_image(restorer, warm, tiles, contextlib.nullcontext)
        _set_precision_flags(ctx.device, "fp32")
        start = time.perf_counter()
        reference = restore_image(restorer, blurry, tiles, contextlib.nullcontext)[:, :3]
        sync(ctx.device)
        reference_s = time.perf_counter() - start
        reference_psnr = _psnr_db(reference, sharp)
        yield Row(
            "precision",
            f"{name} fp32",
            "PASS" if math.isfinite(reference_psnr) else "FAIL",
            0.0,
            "dB",
            f"reference: PSNR vs sharp {reference_psnr:.2f} dB"
            f" (input {_psnr_db(blurry, sharp):.2f})",
            reference_s,
            {"psnr_db": reference_psnr},
        )
        for mode in ("fp32+tf32", "bf16", "fp16", "high_depth"):
            if not ctx.is_cuda and mode in CPU_SKIPS:
                yield Row("precision", f"{name} {mode}", "SKIPPED", detail=CPU_SKIPS[mode])
                continue
            if ctx.left_s() < 2 * reference_s:
                yield Row("precision", f"{name} {mode}", "SKIPPED", detail="(time)")
                continue
            yield guarded(
                "precision",
                f"{name} {mode}",
                partial(_precision_row, ctx, restorer, name, mode, blurry, sharp, reference),
            )


def _precision_row(
    ctx: Context,
    restorer: Restorer,
    name: str,
    mode: str,
    blurry: Tensor,
    sharp: Tensor,
    reference: Tensor,
) -> Row:
    """One precision of one model against the float32 reference."""
    _set_precision_flags(ctx.device, "fp32+tf32")
    start = time.perf_counter()
    restored = restore_image(
        restorer, blurry, ctx.sizes.tiles, _precision_context(ctx.device, mode)
    )
    sync(ctx.device)
    seconds = time.perf_counter() - start
    restored = restored[:, :3]
    delta = _psnr_db(restored, sharp) - _psnr_db(reference, sharp)
    error = _max_abs(restored, reference)
    against = _psnr_db(restored, reference)
    finite = bool(torch.isfinite(restored).all())
    passed = finite and (
        error <= HIGH_DEPTH_TOLERANCE if mode == "high_depth" else delta >= -PRECISION_LOSS_DB
    )
    rule = (
        f"max abs <= {HIGH_DEPTH_TOLERANCE:g}"
        if mode == "high_depth"
        else f"PSNR change >= -{PRECISION_LOSS_DB} dB"
    )
    return Row(
        "precision",
        f"{name} {mode}",
        "PASS" if passed else "FAIL",
        delta,
        "dB",
        f"vs fp32 output: PSNR {against:.1f} dB, max abs {error:.2e}; {rule}"
        + ("" if finite else "; NON-FINITE output"),
        seconds,
        {"psnr_change_db": delta, "psnr_vs_fp32_db": against, "max_abs": error},
    )


def check_oom(ctx: Context) -> Iterator[Row]:
    """Out of memory halves the tile batch; the output equals the unconstrained one."""
    sizes = ctx.sizes
    _, image = synthetic_pair(*sizes.oom_image, seed=1)
    image = image.to(ctx.device)
    large = sizes.oom_tiles
    small = TileSettings(large.tile_px, large.overlap_px, batch=4)
    halvings: list[int] = []
    start = time.perf_counter()
    if not ctx.is_cuda:
        torch.manual_seed(0)
        network = Swintormer(preset("tiny")).eval()
        failures: list[int] = []

        def limited(tiles: Tensor) -> Tensor:
            if tiles.shape[0] > 2:  # what a full device does to a large batch
                failures.append(tiles.shape[0])
                raise torch.OutOfMemoryError("simulated: the device is full")
            return network(tiles)

        with torch.inference_mode():
            expected = restore_tiled(network, image, small)
            restored = restore_tiled(limited, image, large, on_batch_halved=halvings.append)
        how = f"simulated on the CPU: batches > 2 raise ({len(failures)} raised)"
    else:
        restorer = load_restorer(DEFAULT_WEIGHTS, device=ctx.device)
        gc.collect()
        torch.cuda.empty_cache()
        baseline = torch.cuda.memory_allocated(ctx.device)
        _reset_peak(ctx.device)
        expected = restore_image(restorer, image, small, full_float32)
        peak = torch.cuda.max_memory_allocated(ctx.device)
        cap = peak + (peak - baseline) // 2  # batch 4 fits, twice its activations do not
        total = torch.cuda.get_device_properties(ctx.device).total_memory
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(cap / total, ctx.device)
        try:
            restored = restore_image(restorer, image, large, full_float32, halvings.append)
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, ctx.device)
            torch.cuda.empty_cache()
        how = (
            f"cap {cap / 2**20:.0f} MiB of {total / 2**30:.0f} GiB"
            f" (batch 4 peaked at {peak / 2**20:.0f} MiB)"
        )
    error = _max_abs(restored, expected)
    ran = halvings[-1] if halvings else large.batch
    passed = bool(halvings) and error <= OOM_TOLERANCE
    path = " -> ".join(str(b) for b in [large.batch, *halvings])
    yield Row(
        "oom",
        f"batch {large.batch} under a cap",
        "PASS" if passed else "FAIL",
        ran,
        "tiles/batch",
        f"halved {path}, finished; max abs vs uncapped {error:.1e}; {how}",
        time.perf_counter() - start,
        {"halvings": halvings, "batch_ran": ran, "max_abs": error},
    )


def check_train_probe(ctx: Context) -> Iterator[Row]:
    """`--train-probe-s` seconds of the real training loop; steps/s after the first step."""
    from model.training.config import load_train_config
    from model.training.train import train

    sizes = ctx.sizes
    probe_s = sizes.probe_s
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_train_") as out_dir:
        overrides = [
            f'run.device="{ctx.device}"',
            f'run.out_dir="{out_dir}"',
            f"run.max_wall_s={probe_s + sizes.probe_startup_s:.0f}",  # a safety net
            "run.val_every=1000000000",
            "run.checkpoint_every=1000000000",
            "run.checkpoint_every_s=0.0",
            *sizes.probe_overrides,
            *ctx.train_overrides,
        ]
        config = load_train_config(ctx.train_config, overrides)
        cache = config.data.cache_dir
        if cache and not (Path(cache) / "patches.json").is_file():
            notes.append(f"no data cache at {cache}: dead leaves only")
            overrides += ['data.cache_dir=""', "data.dead_leaves_fraction=1.0"]
            config = load_train_config(ctx.train_config, overrides)
        step_ends: list[float] = []

        def should_stop() -> bool:
            now = time.perf_counter()
            step_ends.append(now)
            return now - step_ends[0] >= probe_s or ctx.left_s() < 10

        lines: list[str] = []
        _reset_peak(ctx.device)
        start = time.perf_counter()
        result = train(config, should_stop=should_stop, log=lines.append)
        sync(ctx.device)
        seconds = time.perf_counter() - start
    steps = len(step_ends)
    if steps >= 2:
        steps_per_s = (steps - 1) / (step_ends[-1] - step_ends[0])
    else:
        steps_per_s = result.steps_per_s
        notes.append("one step only: steps/s includes it")
    batch = config.data.batch
    peak = _peak_mib(ctx.device)
    first_step_s = step_ends[0] - start if step_ends else math.nan
    detail = (
        f"{steps} steps of {config.data.batch} x {config.data.patch_px} px,"
        f" {steps_per_s * batch:.1f} samples/s, amp {config.run.amp if ctx.is_cuda else 'off'},"
        f" start-up + first step {first_step_s:.1f} s"
        + ("" if peak is None else f", peak {peak:.0f} MiB")
        + "".join(f"; {note}" for note in notes)
    )
    yield Row(
        "train_probe",
        ctx.train_config.name,
        "PASS" if steps_per_s > 0 else "FAIL",
        steps_per_s,
        "steps/s",
        detail,
        seconds,
        {
            "steps_per_s": steps_per_s,
            "samples_per_s": steps_per_s * batch,
            "steps": steps,
            "batch": batch,
            "patch_px": config.data.patch_px,
            "first_step_s": first_step_s,
            "peak_vram_mib": peak,
            "fit_steps_per_s": result.steps_per_s,
            "data": "dead leaves only" if not config.data.cache_dir else config.data.cache_dir,
            "last_log_line": lines[-1] if lines else "",
        },
    )


def _throughput_fn(name: str, device: torch.device) -> tuple[Callable[[Tensor, str], Tensor], int]:
    """The batch function of a model name ("default" or a network preset) and its channels."""
    torch.manual_seed(0)
    if name == "default":
        restorer = load_restorer(DEFAULT_WEIGHTS, device=device)

        def run_restorer(tiles: Tensor, precision: str) -> Tensor:
            with _precision_context(device, precision)():
                return restorer.run(tiles, seed=0).restored.float()

        return run_restorer, restorer.image_channels
    network = Swintormer(preset(name)).eval().to(device)

    def run_network(tiles: Tensor, precision: str) -> Tensor:
        with _precision_context(device, precision)():
            return network(tiles).float()

    return run_network, network.config.in_channels


def check_throughput(ctx: Context) -> Iterator[Row]:
    """MP/s and peak memory per model, tile batch and precision."""
    sizes = ctx.sizes
    side = sizes.throughput_side
    for name in sizes.throughput_models:
        fn, channels = _throughput_fn(name, ctx.device)
        torch.manual_seed(1)
        image = torch.rand(1, channels, side, side, device=ctx.device)
        for precision in sizes.throughput_precisions:
            for batch in sizes.throughput_batches:
                case = f"{name} {precision} batch {batch}"
                if ctx.left_s() < 2:
                    yield Row("throughput", case, "SKIPPED", detail="(time)")
                    continue
                yield guarded(
                    "throughput",
                    case,
                    partial(_throughput_row, ctx, fn, image, case, precision, batch),
                )


def _throughput_row(
    ctx: Context,
    fn: Callable[[Tensor, str], Tensor],
    image: Tensor,
    case: str,
    precision: str,
    batch: int,
) -> Row:
    """A warm-up image, then up to `throughput_repeats` timed ones while time is left."""
    tiles = TileSettings(ctx.sizes.tiles.tile_px, ctx.sizes.tiles.overlap_px, batch=batch)
    _set_precision_flags(ctx.device, precision)
    _reset_peak(ctx.device)
    times: list[float] = []
    with torch.inference_mode():
        for _ in range(ctx.sizes.throughput_repeats + 1):
            if times and ctx.left_s() < times[-1] * 1.2:
                break
            sync(ctx.device)
            start = time.perf_counter()
            restore_tiled(lambda t: fn(t, precision), image, tiles)
            sync(ctx.device)
            times.append(time.perf_counter() - start)
    megapixels = image.shape[-1] * image.shape[-2] / 1e6
    peak = _peak_mib(ctx.device)
    if len(times) < 2:
        return Row("throughput", case, "SKIPPED", detail=f"(time) warm-up took {times[0]:.1f} s")
    seconds = statistics.median(times[1:])
    memory = "" if peak is None else f", peak {peak:.0f} MiB"
    return Row(
        "throughput",
        case,
        "PASS",
        megapixels / seconds,
        "MP/s",
        f"{megapixels:.3g} MP, median {seconds:.3f} s of {len(times) - 1}{memory}",
        sum(times),
        {"mp_per_s": megapixels / seconds, "peak_vram_mib": peak, "batch": batch},
    )


def _dynamo_counts() -> dict[str, int]:
    """Graphs and frames torch._dynamo compiled so far ({} where its counters are missing).

    A recompilation (a new input shape, a failed guard) adds a graph; torch 2.13's
    `counters["recompiles"]` stays empty, so graphs are what is counted.
    """
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return {}
    return {
        "graphs": int(counters["stats"].get("unique_graphs", 0)),
        "frames": int(counters["frames"].get("total", 0)),
    }


def check_compile(ctx: Context) -> Iterator[Row]:
    """The worker's `torch.compile` with padded batches over two image sizes."""
    if not ctx.is_cuda and not ctx.compile_on_cpu:
        yield Row("compile", "-", "SKIPPED", detail="CPU: pass --compile-on-cpu")
        return
    sizes = ctx.sizes
    if sizes.compile_model == "default":
        restorer = load_restorer(DEFAULT_WEIGHTS, device=ctx.device)
    else:
        torch.manual_seed(0)
        restorer = build_restorer(model_preset(sizes.compile_model)).eval().to(ctx.device)
    batch = 16 if ctx.is_cuda else 4
    tiles = TileSettings(sizes.tiles.tile_px, sizes.tiles.overlap_px, batch, pad_batches=True)
    _set_precision_flags(ctx.device, "fp32+tf32")
    precision = _precision_context(ctx.device, "fp32")
    first, second = (
        synthetic_pair(*shape, seed=2)[1].to(ctx.device) for shape in sizes.compile_images
    )

    def timed(image: Tensor) -> tuple[Tensor, float]:
        sync(ctx.device)
        start = time.perf_counter()
        restored = restore_image(restorer, image, tiles, precision)
        sync(ctx.device)
        return restored, time.perf_counter() - start

    timed(first)  # eager warm-up
    eager, eager_s = timed(first)
    torch._dynamo.reset()
    before = _dynamo_counts()
    restorer.network.compile()
    compiled_first, compile_s = timed(first)
    after_first = _dynamo_counts()
    compiled, compiled_s = timed(first)
    _, second_s = timed(second)
    after_second = _dynamo_counts()
    shape = "x".join(map(str, sizes.compile_images[0]))
    yield Row(
        "compile",
        f"first image {shape} (compiles)",
        "PASS",
        compile_s,
        "s",
        f"eager {eager_s:.2f} s for the same image",
        compile_s,
        {"compile_s": compile_s, "eager_s": eager_s},
    )
    error = _max_abs(compiled, eager)
    yield Row(
        "compile",
        "compiled vs eager",
        "PASS" if error <= COMPILE_TOLERANCE else "FAIL",
        eager_s / compiled_s,
        "x faster",
        f"{compiled_s:.3f} s vs {eager_s:.3f} s; max abs {error:.1e}"
        f" (first compiled image {_max_abs(compiled_first, eager):.1e}),"
        f" tolerance {COMPILE_TOLERANCE:g}",
        compiled_s,
        {"speed_up": eager_s / compiled_s, "max_abs": error},
    )
    new = {key: after_second[key] - after_first.get(key, 0) for key in after_second}
    made = {key: after_first[key] - before.get(key, 0) for key in after_first}
    second_shape = "x".join(map(str, sizes.compile_images[1]))
    yield Row(
        "compile",
        f"second size {second_shape}",
        "PASS" if not after_second or new.get("graphs", 0) == 0 else "FAIL",
        new.get("graphs"),
        "new graphs",
        f"{second_s:.3f} s; first image: {made.get('graphs', '?')} graphs of"
        f" {made.get('frames', '?')} frames; second: {new.get('frames', '?')} new frames"
        + ("" if after_second else " (torch._dynamo counters unavailable)"),
        second_s,
        {"graphs_first": made.get("graphs"), "new_graphs_second": new.get("graphs"), **new},
    )


CHECKS: dict[str, Check] = {
    "environment": check_environment,
    "parity": check_parity,
    "precision": check_precision,
    "oom": check_oom,
    "train_probe": check_train_probe,
    "compile": check_compile,
    "throughput": check_throughput,
}


# -- running -----------------------------------------------------------------------------------


@contextlib.contextmanager
def hard_stop(limit_s: float) -> Iterator[None]:
    """Raise `CheckTimeout` in the main thread after `limit_s` seconds; restore the old timer.

    A check that loops in Python stops there; one blocked in a C call stops once it returns.
    Off the main thread (or without SIGALRM) the block runs unbounded.
    """
    if not hasattr(signal, "SIGALRM") or not _on_main_thread():
        yield
        return

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise CheckTimeout(f"ran past its {limit_s:.0f} s hard stop")

    previous = signal.signal(signal.SIGALRM, expire)
    start = time.monotonic()
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_delay:  # someone else's alarm (e.g. pytest-timeout): put back what is left of it
            left = max(old_delay - (time.monotonic() - start), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, old_interval)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _isolated(device: torch.device) -> Iterator[None]:
    """Put back what a check may change process-wide: TF32, threads, the CUDA memory cap."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
        torch.set_num_threads(threads)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0, device)
            torch.cuda.empty_cache()


def run_checks(
    checks: Sequence[tuple[str, Check, float]],
    ctx: Context,
    emit: Callable[[Row], None],
    progress: Callable[[str], None] = lambda line: None,
) -> None:
    """Run each (name, check, budget_s) in turn, isolated; emit its rows as they come."""
    for name, check, budget_s in checks:
        left = ctx.deadline - time.monotonic()
        if left < MIN_CHECK_S:
            emit(Row(name, "-", "SKIPPED", detail="(time) the --budget-s budget is spent"))
            progress(f"{name}: SKIPPED (time)")
            continue
        limit = min(budget_s, left)
        ctx.check_deadline = time.monotonic() + limit
        progress(f"{name}: running (budget {limit:.0f} s)")
        start = time.perf_counter()
        failure: Row | None = None
        with _isolated(ctx.device):
            try:
                with hard_stop(limit + HARD_STOP_GRACE_S):
                    for row in check(ctx):
                        emit(
                            row if row.check else Row(name, row.case, row.status, detail=row.detail)
                        )
            except CheckTimeout as stop:
                failure = Row(name, "-", "FAIL", detail=f"(time) {stop}")
            except Exception as error:  # any failure of one check is a row, never the end
                failure = _failure_row(name, "-", error, 0.0)
        if failure is not None:
            failure.seconds = time.perf_counter() - start
            emit(failure)
        ctx.check_deadline = math.inf
        progress(f"{name}: done in {time.perf_counter() - start:.1f} s")


class Report:
    """The table on stdout and the JSON file, both written row by row."""

    def __init__(self, json_path: Path | None, header: dict[str, Any]) -> None:
        self.json_path = json_path
        self.header = header
        self.rows: list[Row] = []

    def start(self) -> None:
        description = ", ".join(f"{key} {value}" for key, value in self.header.items())
        print(f"GPU check: {description}\n\n{TABLE_HEADER}", flush=True)
        self._write(finished=False)

    def emit(self, row: Row) -> None:
        self.rows.append(row)
        print(row.markdown(), flush=True)
        self._write(finished=False)

    def finish(self, wall_s: float) -> None:
        counts = {status: sum(r.status == status for r in self.rows) for status in STATUSES}
        summary = ", ".join(f"{n} {status}" for status, n in counts.items())
        print(f"\n{summary} in {wall_s:.0f} s", flush=True)
        self._write(finished=True, wall_s=round(wall_s, 1))

    def _write(self, **more: Any) -> None:
        if self.json_path is None:
            return
        document = {**self.header, **more, "results": [row.as_json() for row in self.rows]}
        partial = self.json_path.with_name(self.json_path.name + ".partial")
        partial.write_text(json.dumps(document, indent=1, default=str) + "\n")
        os.replace(partial, self.json_path)


def _skipped(ctx: Context) -> Iterator[Row]:
    """The stand-in of a check left out by --skip or --only (its name is filled in)."""
    yield Row("", "-", "SKIPPED", detail="--skip / --only")


def _progress(line: str) -> None:
    print(f"gpu_check {line}", file=sys.stderr, flush=True)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--budget-s", type=float, default=420.0, help="for all checks together")
    parser.add_argument("--json", type=Path, help="write the results here (rewritten per row)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a CPU smoke test")
    parser.add_argument("--skip", nargs="+", choices=tuple(CHECKS), default=[])
    parser.add_argument("--only", nargs="+", choices=tuple(CHECKS), default=[])
    parser.add_argument(
        "--train-config", type=Path, default=Path("configs/lite_defocus_trust.toml")
    )
    parser.add_argument(
        "--train-probe-s", type=float, help="seconds of training steps (60; --quick: 5)"
    )
    parser.add_argument(
        "--train-override",
        "--train-set",
        dest="train_overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="a `swintormer train --set` override for the probe (TOML value); repeatable",
    )
    parser.add_argument("--compile-on-cpu", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch CPU threads; 0 leaves torch's default"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the checks; 0 when none failed, 1 otherwise."""
    started = time.monotonic()
    args = _parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.train_probe_s is not None:
        sizes = Sizes(**{**sizes.__dict__, "probe_s": args.train_probe_s})
    ctx = Context(
        device=torch.device(args.device),
        sizes=sizes,
        deadline=started + args.budget_s,
        train_config=args.train_config,
        train_overrides=tuple(args.train_overrides),
        compile_on_cpu=args.compile_on_cpu,
    )
    report = Report(
        args.json,
        {
            "device": str(ctx.device),
            "torch": torch.__version__,
            "budget_s": args.budget_s,
            "quick": args.quick,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    report.start()
    budgets = {**sizes.budgets_s, "train_probe": sizes.probe_s + sizes.probe_startup_s}
    checks = [
        (
            name,
            _skipped if name in args.skip or (args.only and name not in args.only) else check,
            budgets[name],
        )
        for name, check in CHECKS.items()
    ]
    run_checks(checks, ctx, report.emit, _progress)
    report.finish(time.monotonic() - started)
    return 1 if any(row.status == "FAIL" for row in report.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
