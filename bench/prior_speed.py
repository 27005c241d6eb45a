"""Wall-clock cost of the diffusion prior beside the network it conditions.

Times, round-robin so that machine noise hits every variant alike, on one image:
- `network`: the plain network (`Restorer(network, None)`);
- `prior T=t`: the prior alone (LQ encoder + t denoiser steps) for t in {1, 2, 4, 8};
- `restorer T=4`: prior + FiLM-conditioned network, what a worker runs by default.
It prints medians, each variant's time as a share of the network's measured in the same run, and
the prior's MAC share from `model.profile`. Weights are random: cost does not depend on them.
CPU time (`time.process_time`, one thread by default) is printed beside wall time because on a
shared machine wall time mostly measures the neighbours.

    python bench/prior_speed.py --preset lite --size 256 256 --repeats 15 --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable

import torch

from model.config import PRESETS, PriorConfig, preset
from model.prior import LatentPrior
from model.profile import prior_cost, profile_network
from model.restorer import DEFAULT_SEED, Restorer
from model.swintormer import Swintormer, pad_to_multiple

STEPS = (1, 2, 4, 8)


def interleaved_times(
    variants: dict[str, Callable[[], object]], repeats: int, device: torch.device
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds of each variant, `repeats` interleaved rounds after one warm-up."""
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():
        fn()
    for _ in range(repeats):
        for name, fn in variants.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description="wall-clock cost of the diffusion prior")
    parser.add_argument("--preset", choices=PRESETS, default="lite")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    height, width = args.size
    device = torch.device(args.device)

    plain_config = preset(args.preset)
    priors = {
        t: LatentPrior(PriorConfig(in_channels=plain_config.in_channels, steps=t)).to(device).eval()
        for t in STEPS
    }
    hooked = dataclasses.replace(plain_config, cond_channels=priors[4].config.latent_channels)
    network = Swintormer(hooked).to(device).eval()
    restorer = Restorer(network, priors[4])
    image = torch.rand(1, plain_config.in_channels, height, width, device=device)
    padded = pad_to_multiple(image, network.size_multiple)

    def sample(t: int) -> Callable[[], object]:
        return lambda: priors[t].sample(
            padded, generator=torch.Generator().manual_seed(DEFAULT_SEED)
        )

    variants: dict[str, Callable[[], object]] = {"network": lambda: network(image)}
    variants |= {f"prior T={t}": sample(t) for t in STEPS}
    variants["restorer T=4"] = lambda: restorer(image)
    with torch.inference_mode():
        wall, cpu = interleaved_times(variants, args.repeats, device)

    base_macs = profile_network(plain_config, height, width).macs_total
    base_wall, base_cpu = statistics.median(wall["network"]), statistics.median(cpu["network"])
    print(
        f"preset {args.preset}, 1x{plain_config.in_channels}x{height}x{width}, {args.device}, "
        f"{torch.get_num_threads()} thread(s), medians of {args.repeats} interleaved rounds"
    )
    print(
        f"{'variant':<13} {'wall ms':>9} {'/ network':>10} {'CPU ms':>9} {'/ network':>10} "
        f"{'prior GMAC':>11} {'MAC share':>10}"
    )
    for name in variants:
        wall_s, cpu_s = statistics.median(wall[name]), statistics.median(cpu[name])
        gmac, share = "-", "-"
        if name != "network":
            t = int(name.split("=")[1])
            cost = prior_cost(plain_config, priors[t].config, height, width)
            gmac, share = f"{cost.total / 1e9:.3f}", f"{100 * cost.total / base_macs:.1f} %"
        print(
            f"{name:<13} {1e3 * wall_s:>9.1f} {wall_s / base_wall:>10.3f} {1e3 * cpu_s:>9.1f} "
            f"{cpu_s / base_cpu:>10.3f} {gmac:>11} {share:>10}"
        )


if __name__ == "__main__":
    main()
