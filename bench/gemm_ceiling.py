"""How fast the network could possibly run on this CPU: its MACs at the rate of a large sgemm.

Issue #18 asks for the `paper` network at 3x the released computation on one CPU thread, with
outputs within 1e-4 (so no less arithmetic: no low precision, no pruning). This bench puts that
target beside a ceiling: the network's multiply-accumulates (`model.profile.profile_network`:
convolutions, linears and attention products) divided by what one large float32 matrix product
sustains here, about the best rate any kernel reaches. It then times our forward pass and the
released computation (`bench.released_style`, same weights), interleaved, and prints the share of
that rate each reaches and the share the 3x target would need.

    python -m bench.gemm_ceiling --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.model_speed import networks
from bench.prior_speed import interleaved_times
from model.config import preset
from model.profile import profile_network


def gemm_rate(repeats: int) -> float:
    """Median GMAC/s of a (4096 x 384) @ (384 x 1152) float32 product, the shape of a wide
    level's qkv projection on a batch of windows."""
    a, b = torch.randn(4096, 384), torch.randn(384, 1152)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        times.append((time.perf_counter() - start) / 10)
    return 4096 * 384 * 1152 / statistics.median(times) / 1e9


def forward_seconds(name: str, size: int, repeats: int) -> tuple[float, float]:
    """Median process CPU seconds of one 1 x C x size x size forward: (ours, released-style)."""
    ours, released = networks(name)
    image = torch.rand(1, ours.config.in_channels, size, size)
    with torch.inference_mode():
        _, cpu = interleaved_times(
            {"ours": lambda: ours(image), "released": lambda: released(image)},
            repeats,
            torch.device("cpu"),
        )
    return statistics.median(cpu["ours"]), statistics.median(cpu["released"])


def main() -> None:
    parser = argparse.ArgumentParser(description="the GEMM ceiling of the network on this CPU")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    macs = profile_network(preset(args.preset), args.size, args.size).macs_total
    rate = gemm_rate(args.repeats)
    ours, released = forward_seconds(args.preset, args.size, args.repeats)
    floor = macs / (rate * 1e9)
    target = released / 3
    print(f"{args.preset}, 1 x {args.size} x {args.size}, {args.threads} thread(s)")
    print("| quantity | value |")
    print("|---|---:|")
    print(f"| MACs (conv, linear, attention) | {macs / 1e9:.2f} G |")
    print(f"| large sgemm rate | {rate:.1f} GMAC/s |")
    print(f"| ceiling: every MAC at that rate | {floor * 1e3:.0f} ms |")
    share = floor / released
    print(f"| released computation, median CPU | {released * 1e3:.0f} ms ({share:.0%}) |")
    print(f"| ours, median CPU | {ours * 1e3:.0f} ms ({floor / ours:.0%} of the rate) |")
    print(f"| ours vs released | {released / ours:.2f}x |")
    print(f"| released / 3 (the target) | {target * 1e3:.0f} ms ({floor / target:.0%} needed) |")
    print(f"| ceiling over released | {released / floor:.2f}x |")


if __name__ == "__main__":
    main()
