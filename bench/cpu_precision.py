"""CPU precision of the worker: float32 against bf16 autocast and int8, speed and fidelity; prints
tables.

    python -m bench.cpu_precision [--checkpoints weights/default.safetensors ...]
        [--threads 1] [--repeats 3] [--image-px 1024] [--cases 3] [--modes fp32 bf16 int8]

For each checkpoint, through the worker's own path (`worker.runtime.Runtime` on the CPU, its
precision set to each mode in turn):

1. Speed: one batch of four 256 px tiles (`Runtime.restore_batch`; a warm-up run of each mode,
   then `--repeats` rounds) and one ~1 MP image (tiled like a job: 256 px tiles, 32 px overlap,
   batch 4; `--image-repeats` rounds, default 1, since bf16 is slow without native support), the
   modes interleaved round by round; medians of wall-clock seconds, megapixels per second, and
   the ratio to float32 from the same run.
2. Fidelity: PSNR of each mode's output of the ~1 MP image against float32's, and, on a few
   synthetic evaluation cases (`model.evaluation.cases.synthetic_cases`: disk blur r=3 px,
   noise 0.01, 8-bit), the PSNR of each mode against the sharp reference, so "within 0.05 dB
   of fp32" can be checked.

`int8` is a candidate the worker does not offer: the network's linear layers (attention input
projections, feed-forward projections, skip and channel reductions) replaced by PyTorch's
dynamically quantised int8 linear layers (`torch.ao.quantization.quantize_dynamic`, deprecated in
favour of torchao, which is not a dependency: int8 weights per tensor, activations quantised per
call), the rest in float32. The attention's output projection stays float32: it reads its weight
directly to split one GEMM into two (`model.layers.MixedAttention._attend`).

The machine's `torch.backends.cpu.get_cpu_capability()` is printed with the tables: bf16 runs on
native instructions only where it reports AVX512 and the CPU has AVX512-BF16 or AMX; elsewhere
its kernels convert to and from float32. FFT parts (the Wiener bank, the defocus front end)
run in float32 under any autocast.
"""

from __future__ import annotations

import argparse
import copy
import functools
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from model.evaluation.cases import EVAL_PHOTOS, load_eval_photos, synthetic_cases
from model.evaluation.metrics import psnr
from model.layers import MixedAttention
from model.swintormer import Swintormer
from model.tiling import TileSettings
from service.config import Settings
from worker.runtime import RestoreRequest, Runtime

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = (
    REPO_ROOT / "weights/default.safetensors",
    REPO_ROOT / "weights/lite_defocus.safetensors",
)
MODES = ("fp32", "bf16", "int8")
TILES = TileSettings()  # the deployment default: 256 px tiles, 32 px overlap, batch 4
SEED = 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_precision", description=__doc__)
    parser.add_argument("--checkpoints", type=Path, nargs="+", default=list(CHECKPOINTS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed tile-batch runs per mode (default 3)"
    )
    parser.add_argument(
        "--image-repeats", type=int, default=1, help="timed image runs per mode (default 1)"
    )
    parser.add_argument("--image-px", type=int, default=1024, help="side of the ~1 MP image")
    parser.add_argument("--cases", type=int, default=2, help="synthetic evaluation cases")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=["fp32", "bf16"])
    return parser.parse_args(argv)


def _seconds(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def interleaved_medians(
    calls: dict[str, Callable[[], object]], repeats: int, warm_up: bool
) -> dict[str, float]:
    """Median wall-clock seconds of each call: (one warm-up each,) then `repeats` rounds in turn."""
    if warm_up:
        for call in calls.values():
            call()
    times: dict[str, list[float]] = {mode: [] for mode in calls}
    for _ in range(repeats):
        for mode, call in calls.items():
            times[mode].append(_seconds(call))
    return {mode: statistics.median(runs) for mode, runs in times.items()}


def int8_network(network: Swintormer) -> Swintormer:
    """A copy of `network` whose linear layers run as dynamically quantised int8, except the
    attention output projections (their weight is read directly) and the small MLP that makes the
    attention's position bias (`cpb_mlp`, run once per window size)."""
    quantised = copy.deepcopy(network)
    for parent, module in list(quantised.named_modules()):
        for name, child in list(module.named_children()):
            keep = (
                isinstance(module, MixedAttention) and name == "project_out"
            ) or parent.endswith("cpb_mlp")
            if isinstance(child, nn.Linear) and not keep:
                with warnings.catch_warnings():  # quantised tensors are deprecated (torchao)
                    warnings.simplefilter("ignore")
                    wrapped = torch.ao.quantization.quantize_dynamic(
                        nn.Sequential(child), {nn.Linear}, dtype=torch.qint8
                    )
                setattr(module, name, wrapped[0])
    return quantised


class Modes:
    """Switches one warm runtime between the modes: the precision, and for int8 the network."""

    def __init__(self, checkpoint: Path, threads: int, modes: list[str]) -> None:
        self.runtime = Runtime(Settings(checkpoint=checkpoint, device="cpu", cpu_threads=threads))
        self.runtime.setup()
        assert self.runtime.restorer is not None
        self.fp32_network = self.runtime.restorer.network
        self.int8 = int8_network(self.fp32_network) if "int8" in modes else None

    def use(self, mode: str) -> Runtime:
        """The runtime, set up to run `mode`."""
        assert self.runtime.restorer is not None
        self.runtime.precision = "bf16" if mode == "bf16" else "fp32"
        network = self.int8 if mode == "int8" else self.fp32_network
        assert network is not None
        self.runtime.restorer.network = network
        return self.runtime


def _restore(modes: Modes, mode: str, rgb: np.ndarray) -> np.ndarray:
    return modes.use(mode)(rgb, RestoreRequest(tiles=TILES, seed=SEED)).rgb


def _restore_batch(modes: Modes, mode: str, tiles: torch.Tensor) -> None:
    runtime = modes.use(mode)
    with torch.inference_mode():
        runtime.restore_batch(tiles, RestoreRequest(tiles=TILES, seed=SEED))


def tile_batch_rows(runner: Modes, modes: list[str], repeats: int) -> list[str]:
    """Markdown rows of one batch of tiles: mode, median s, MP/s, speed relative to fp32."""
    assert runner.runtime.restorer is not None
    shape = (TILES.batch, runner.runtime.restorer.image_channels, TILES.tile_px, TILES.tile_px)
    tiles = torch.rand(shape, generator=torch.Generator().manual_seed(SEED))
    calls: dict[str, Callable[[], object]] = {
        mode: functools.partial(_restore_batch, runner, mode, tiles) for mode in modes
    }
    medians = interleaved_medians(calls, repeats, warm_up=True)
    megapixels = TILES.batch * TILES.tile_px**2 / 1e6
    name = f"{TILES.batch} x {TILES.tile_px} px tiles"
    return [_speed_row(name, mode, megapixels, medians) for mode in modes]


def image_rows(
    runner: Modes, modes: list[str], image: np.ndarray, repeats: int
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Markdown rows of one tiled image (the model is warm by now), and each mode's output."""
    outputs: dict[str, np.ndarray] = {}

    def restore(mode: str) -> None:
        outputs[mode] = _restore(runner, mode, image)

    calls: dict[str, Callable[[], object]] = {
        mode: functools.partial(restore, mode) for mode in modes
    }
    medians = interleaved_medians(calls, repeats, warm_up=False)
    megapixels = image.shape[0] * image.shape[1] / 1e6
    name = f"{image.shape[1]} x {image.shape[0]} image, tiled"
    return [_speed_row(name, mode, megapixels, medians) for mode in modes], outputs


def _speed_row(name: str, mode: str, megapixels: float, medians: dict[str, float]) -> str:
    seconds = medians[mode]
    ratio = medians["fp32"] / seconds if "fp32" in medians else float("nan")
    return f"| {name} | {mode} | {seconds:.2f} | {megapixels / seconds:.4f} | {ratio:.2f}x |"


def fidelity_rows(
    runner: Modes, modes: list[str], outputs: dict[str, np.ndarray], case_count: int
) -> list[str]:
    """Markdown rows: mode, PSNR of its image output vs fp32's, mean PSNR vs sharp on the
    synthetic cases, and that mean's difference from fp32's."""
    photos = load_eval_photos(EVAL_PHOTOS[:case_count])
    cases = synthetic_cases(photos, radii_px=(3.0,), noise_sigmas=(0.01,))
    scores = {}
    for mode in modes:
        scores[mode] = statistics.mean(
            psnr(_restore(runner, mode, case.blurry), case.sharp) for case in cases
        )
    rows = []
    for mode in modes:
        versus = "-" if mode == "fp32" else f"{psnr(outputs[mode], outputs['fp32'], 0):.2f}"
        delta = scores[mode] - scores.get("fp32", float("nan"))
        rows.append(f"| {mode} | {versus} | {scores[mode]:.3f} | {delta:+.3f} |")
    return rows


def photo_like_image(side_px: int) -> np.ndarray:
    """A side_px x side_px RGB float32 image in [0, 1]: the first evaluation photo mirrored and
    tiled up to the size, with a little noise (seeded), so timings see photo-like content."""
    rng = np.random.default_rng(SEED)
    photo = load_eval_photos(EVAL_PHOTOS[:1], crop_px=min(side_px, 512))[0][1]
    reps = -(-side_px // photo.shape[0])
    mirrored = np.concatenate([photo, photo[::-1]], axis=0)
    image = np.tile(np.concatenate([mirrored, mirrored[:, ::-1]], axis=1), (reps, reps, 1))
    image = np.ascontiguousarray(image[:side_px, :side_px]).astype(np.float32)
    return np.clip(image + rng.normal(0, 0.005, image.shape).astype(np.float32), 0, 1)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    image = photo_like_image(args.image_px)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), CPU capability"
        f" {torch.backends.cpu.get_cpu_capability()}; per mode, interleaved: {args.repeats}"
        f" tile-batch rounds after a warm-up, {args.image_repeats} image round(s)"
    )
    for checkpoint in args.checkpoints:
        runner = Modes(checkpoint, args.threads, args.modes)
        print(f"\n### {checkpoint.name}\n")
        print("| workload | mode | median s | MP/s | speed vs fp32 |")
        print("|---|---|---|---|---|")
        for row in tile_batch_rows(runner, args.modes, args.repeats):
            print(row, flush=True)
        rows, outputs = image_rows(runner, args.modes, image, args.image_repeats)
        for row in rows:
            print(row, flush=True)
        print()
        print(
            f"| mode | PSNR vs fp32 output (the image), dB | mean PSNR vs sharp, {args.cases}"
            " synthetic cases (r=3 px, σ=0.01), dB | vs fp32, dB |"
        )
        print("|---|---|---|---|")
        for row in fidelity_rows(runner, args.modes, outputs, args.cases):
            print(row, flush=True)


if __name__ == "__main__":
    main()
