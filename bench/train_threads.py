"""Seconds per training step against torch's CPU thread count, measured in one run.

    python -m bench.train_threads [--preset lite] [--patch-px 128] [--batch 2] [--rounds 3]

One stage-1 step of the prior (network + teacher encoder, forward, backward, AdamW) on random
patches, the thread counts taken in turn within each round so that a load which drifts over the
run (other jobs on a shared machine) falls on all of them alike. Prints the median per thread
count and its speed relative to one thread. `uptime`'s load average is printed beside it: the
ratio depends on how oversubscribed the machine is.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from model.restorer import build_restorer
from model.training.config import TrainConfig
from model.training.fit import Batch
from model.training.stages import stage1_loss, stage1_parameters
from model.training.train import model_config


def step_seconds(config: TrainConfig, threads: int, batch: int, patch_px: int) -> float:
    """Wall seconds of one stage-1 training step with `threads` torch threads."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    restorer = build_restorer(model_config(config.model))
    optimizer = torch.optim.AdamW(stage1_parameters(restorer), lr=1e-4)
    blurry, sharp = torch.rand(2, batch, 3, patch_px, patch_px)
    radius = torch.rand(batch, 1, patch_px, patch_px) * 8
    start = time.perf_counter()
    loss = stage1_loss(restorer, Batch(blurry, sharp, radius), 0.05).total
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="lite")
    parser.add_argument("--defocus", action="store_true", help="with the defocus front end")
    parser.add_argument("--patch-px", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    config = TrainConfig.from_dict({"model": {"preset": args.preset, "use_defocus": args.defocus}})
    times: dict[int, list[float]] = {n: [] for n in args.threads}
    step_seconds(config, 1, 1, args.patch_px)  # warm-up: allocator, kernels
    for _ in range(args.rounds):
        for threads in args.threads:
            times[threads].append(step_seconds(config, threads, args.batch, args.patch_px))
    load = os.getloadavg()
    print(
        f"{args.preset}, {args.batch} x {args.patch_px} px, {args.rounds} rounds,"
        f" load average {load[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print("| torch threads | median s/step | steps/s | speed vs 1 thread |")
    print("|---|---|---|---|")
    base = statistics.median(times[args.threads[0]])
    for threads, values in times.items():
        median = statistics.median(values)
        print(f"| {threads} | {median:.2f} | {1 / median:.3f} | {base / median:.2f}x |")


if __name__ == "__main__":
    main()
