"""How many tiles per forward pass a CPU worker should run: whole images, batch against batch.

A GPU needs batches to fill its cores; a CPU does not, and a bigger batch's activations fall
out of the caches. This restores one photo-sized random image tiled exactly as the worker does
(`model.tiling.restore_tiled` over `Restorer.run`, 256 px feathered tiles, 32 px overlap) with
each batch size, round-robin so that machine noise hits every size alike, and prints the median
wall time, megapixels per second and the speed against the largest batch, for each checkpoint.
The outputs of every batch size are compared too (per-tile prior seeds: they must agree).

    python -m bench.cpu_tile_batch --threads 2 --repeats 3 [--checkpoint C ...] [--batches 1 2 4]
"""

from __future__ import annotations

import argparse
import functools
import statistics
from pathlib import Path

import torch

from bench.prior_speed import interleaved_times
from model.restorer import load_restorer
from model.tiling import TileSettings, restore_tiled

DEFAULT_CHECKPOINTS = ("weights/default.safetensors", "weights/lite_defocus.safetensors")


def bench_checkpoint(
    path: Path, batches: list[int], size: tuple[int, int], repeats: int
) -> list[str]:
    """Table rows for one checkpoint."""
    restorer = load_restorer(path).eval()
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, restorer.image_channels, *size, generator=generator)

    def restore(batch: int) -> torch.Tensor:
        settings = TileSettings(tile_px=256, overlap_px=32, batch=batch)
        with torch.inference_mode():
            return restore_tiled(lambda t: restorer.run(t, seed=0).restored, image, settings)

    reference = restore(max(batches))
    difference = max(float((restore(b) - reference).abs().max()) for b in batches)
    wall, _ = interleaved_times(
        {str(b): functools.partial(restore, b) for b in batches}, repeats, torch.device("cpu")
    )
    megapixels = size[0] * size[1] / 1e6
    largest = statistics.median(wall[str(max(batches))])
    rows = [
        f"\n{path.name}, {size[1]}x{size[0]} ({megapixels:.2f} MP), largest difference between"
        f" batch sizes {difference:.1e}\n",
        "| tiles per forward | median wall (s) | MP/s | speed vs the largest batch |",
        "|---:|---:|---:|---:|",
    ]
    for batch in batches:
        seconds = statistics.median(wall[str(batch)])
        rows.append(
            f"| {batch} | {seconds:.2f} | {megapixels / seconds:.3f} | {largest / seconds:.2f}x |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU tile batch sizes, whole images")
    parser.add_argument("--checkpoint", type=Path, nargs="*", default=None)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--size", type=int, nargs=2, default=(768, 1024), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, medians of {args.repeats} interleaved rounds")
    for path in args.checkpoint or [Path(p) for p in DEFAULT_CHECKPOINTS]:
        for line in bench_checkpoint(path, sorted(args.batches), tuple(args.size), args.repeats):
            print(line, flush=True)


if __name__ == "__main__":
    main()
