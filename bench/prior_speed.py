"""Wall-clock cost of the diffusion prior beside the network it conditions.

Runs, round-robin so that machine noise hits every variant alike, the plain network
(`Restorer(network, None)`) and the prior-conditioned restorer for T in {1, 2, 4, 8}, on one
image, and prints medians, the slowdown over the plain network measured in the same run, and
the prior's MAC share from `model.prior_cost`. Weights are random: cost does not depend on them.
CPU time (`time.process_time`, one thread by default) is reported beside wall time because on a
shared machine wall time mostly measures the neighbours.

    python bench/prior_speed.py --preset lite --size 256 256 --repeats 7 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import Tensor

from model.config import PRESETS, SwintormerConfig, preset
from model.prior import LatentPrior, PriorConfig
from model.prior_cost import prior_cost
from model.profile import profile_network
from model.restorer import Restorer
from model.swintormer import Swintormer

STEPS = (1, 2, 4, 8)


def main() -> None:
    parser = argparse.ArgumentParser(description="wall-clock cost of the diffusion prior")
    parser.add_argument("--preset", choices=PRESETS, default="lite")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per variant")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    height, width = args.size
    device = torch.device(args.device)

    plain_config = preset(args.preset)
    prior_configs = {t: PriorConfig(in_channels=plain_config.in_channels, steps=t) for t in STEPS}
    hooked = SwintormerConfig.from_dict(
        plain_config.to_dict() | {"cond_channels": prior_configs[4].latent_channels}
    )
    network = Swintormer(hooked).to(device).eval()
    variants: dict[str, Callable[[Tensor], Tensor]] = {"prior off": Restorer(network, None)}
    for t, config in prior_configs.items():
        variants[f"prior T={t}"] = Restorer(network, LatentPrior(config)).to(device).eval()
    image = torch.rand(1, plain_config.in_channels, height, width, device=device)

    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    with torch.inference_mode():
        for fn in variants.values():  # warm-up: caches, allocator, lazy init
            fn(image)
        for _ in range(args.repeats):
            for name, fn in variants.items():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start, start_cpu = time.perf_counter(), time.process_time()
                fn(image)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)

    base_macs = profile_network(plain_config, height, width).macs_total
    base_wall = statistics.median(wall["prior off"])
    base_cpu = statistics.median(cpu["prior off"])
    print(
        f"preset {args.preset}, 1x{plain_config.in_channels}x{height}x{width}, {args.device}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats} (interleaved runs)"
    )
    print(
        f"{'variant':<12} {'wall ms':>9} {'x plain':>8} {'CPU ms':>9} {'x plain':>8} "
        f"{'prior GMAC':>11} {'MAC share':>10}"
    )
    for name in variants:
        wall_s, cpu_s = statistics.median(wall[name]), statistics.median(cpu[name])
        if name == "prior off":
            gmac, share = "-", "-"
        else:
            cost = prior_cost(plain_config, prior_configs[int(name.split("=")[1])], height, width)
            gmac, share = f"{cost.total / 1e9:.3f}", f"{100 * cost.total / base_macs:.1f} %"
        print(
            f"{name:<12} {1e3 * wall_s:>9.1f} {wall_s / base_wall:>8.3f} {1e3 * cpu_s:>9.1f} "
            f"{cpu_s / base_cpu:>8.3f} {gmac:>11} {share:>10}"
        )


if __name__ == "__main__":
    main()
