"""Would bf16 autocast speed up training on the CPU? Times training steps in float32 and bf16.

Training keeps the CPU in float32 (`model.training.fit`: `run.amp` applies on CUDA only). On a
CPU with native bf16 (AVX512-BF16 or AMX) the worker's bf16 autocast runs inference 1.30-1.46x
as fast (`bench.cpu_precision`); a training step also runs the backward pass and the optimiser,
whose share of the time bf16 does not shorten alike. This times one training step of the
network (`--preset`, 3 input channels plus the 3 of the blend where the preset's stem reads 6:
random images, L1 against them, backward, AdamW) at `--batch` patches of `--patch-px`, the two
modes interleaved round by round after a warm-up of each, and prints the median seconds per
step and the ratio to float32 from the same run. The defocus front end and the prior are left
out: the front end's FFTs run in float32 under any autocast, and the prior is a small part of
a step.

    python -m bench.train_precision [--preset lite] [--batch 2 8] [--patch-px 128] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import Tensor

from model.config import preset
from model.devices import autocast
from model.swintormer import Swintormer
from worker.runtime import cpu_has_native_bf16

MODES = ("fp32", "bf16")


def step_seconds(
    network: Swintormer, optimiser: torch.optim.Optimizer, images: Tensor, precision: str
) -> float:
    """Wall-clock seconds of one training step (forward, L1, backward, optimiser step)."""
    start = time.perf_counter()
    with autocast(images.device, precision):
        restored = network(images)
    loss = (restored.float() - images[:, :3]).abs().mean()
    loss.backward()
    optimiser.step()
    optimiser.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def time_modes(
    preset_name: str, batch: int, patch_px: int, rounds: int, steps: int
) -> dict[str, list[float]]:
    """Seconds per step of each mode: `rounds` rounds of `steps` steps per mode, interleaved."""
    torch.manual_seed(0)
    network = Swintormer(preset(preset_name))
    optimiser = torch.optim.AdamW(network.parameters(), lr=1e-5)
    images = torch.rand(batch, network.config.in_channels, patch_px, patch_px)
    for mode in MODES:  # warm-up: first-call allocations and kernel choices
        step_seconds(network, optimiser, images, mode)
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:
            seconds[mode] += [step_seconds(network, optimiser, images, mode) for _ in range(steps)]
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="lite")
    parser.add_argument("--batch", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--patch-px", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="steps per mode and round")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    capability = torch.backends.cpu.get_cpu_capability()
    native = "yes" if cpu_has_native_bf16() else "no"
    print(
        f"{args.preset} network, patches of {args.patch_px} px, {args.threads} thread(s); "
        f"CPU capability {capability}, native bf16 {native}"
    )
    print()
    print("| batch | fp32 s/step | bf16 s/step | bf16 speed-up |")
    print("|---:|---:|---:|---:|")
    for batch in args.batch:
        seconds = time_modes(args.preset, batch, args.patch_px, args.rounds, args.steps)
        fp32, bf16 = (statistics.median(seconds[mode]) for mode in MODES)
        print(f"| {batch} | {fp32:.3f} | {bf16:.3f} | {fp32 / bf16:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
