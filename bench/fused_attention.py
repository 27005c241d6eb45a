"""Would a fused attention kernel pay? The window attention as run against PyTorch's SDPA.

    python -m bench.fused_attention [--device cpu|cuda] [--tiles 4] [--repeats 5] [--threads 1]

The released attention is `softmax_one`, which equals softmax(a) / (1 + max(softmax(a))) per
row (`model.layers.attend_softmax_one`): the row factor needs each row's maximum and
log-sum-exp, and `torch.nn.functional.scaled_dot_product_attention` returns neither, so no
public fused kernel computes it exactly (a zero extra key would add exp(0 - 0) to the sum, where
the released code adds exp(m - m) after subtracting the row maximum m). This times, per
preset and level, the network's way (logits with the position bias, softmax, product, factor)
against SDPA with the same additive bias and a *standard* softmax: SDPA's time is a lower bound
for an exact fused kernel, so where SDPA does not win, no fused kernel of this form would.
Prints a markdown table: median milliseconds of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.gpu_speed import sync
from model.config import preset
from model.layers import attend_softmax_one


def _time_ms(fn: Callable[[], Tensor], device: torch.device, repeats: int) -> float:
    """Median wall time of `fn` in milliseconds after one warm-up, synchronised on CUDA."""
    times = []
    for index in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        if index:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def level_shapes(name: str, tiles: int, tile_px: int) -> list[tuple[int, int, int, int, int]]:
    """(level, windows, heads, tokens per window, head width) of a preset's spatial attention."""
    config = preset(name)
    shapes = []
    for level in range(4):
        width = config.dim * 2**level
        window = (config.window_sizes or (config.window_size,) * 4)[level]
        side = tile_px // 2**level
        windows = tiles * (side // window) ** 2
        heads = config.heads[level]
        shapes.append((level + 1, windows, heads, window * window, width // 2 // heads))
    return shapes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--presets", nargs="+", default=["lite", "paper"])
    parser.add_argument("--tiles", type=int, default=4, help="256 px tiles per batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads; 0: torch's default")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"{device}, torch {torch.__version__}, {args.tiles} tiles of 256 px\n")
    print("| preset | level | windows x heads x tokens x width | ours ms | SDPA ms | SDPA / ours |")
    print("|---|---|---|---|---|---|")
    generator = torch.Generator().manual_seed(0)
    for name in args.presets:
        for level, windows, heads, tokens, width in level_shapes(name, args.tiles, 256):
            q, k, v = (
                torch.randn(windows, heads, tokens, width, generator=generator).to(device)
                for _ in range(3)
            )
            bias = torch.randn(heads, tokens, tokens, generator=generator).to(device)

            def ours(q: Tensor = q, k: Tensor = k, v: Tensor = v, bias: Tensor = bias) -> Tensor:
                return attend_softmax_one(q @ k.transpose(-2, -1) + bias, v)

            def sdpa(q: Tensor = q, k: Tensor = k, v: Tensor = v, bias: Tensor = bias) -> Tensor:
                return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)

            with torch.inference_mode():
                ours_ms = _time_ms(ours, device, args.repeats)
                sdpa_ms = _time_ms(sdpa, device, args.repeats)
            shape = f"{windows} x {heads} x {tokens} x {width}"
            print(
                f"| {name} | {level} | {shape} | {ours_ms:.2f} | {sdpa_ms:.2f} |"
                f" {sdpa_ms / ours_ms:.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
