"""PyTorch eager against ONNX Runtime for the network on the CPU, at the worker's tile shapes.

For each checkpoint, one round-robin run (so machine noise hits both engines alike) times:
- `network`: the network alone on a batch of tiles, eager PyTorch vs the ONNX Runtime session
  (`model.onnx_network`);
- `restorer`: the whole deployable model on the same batch (front end, prior, network), with
  the network in PyTorch vs through the session, as the CPU worker runs it;
then an image: `restore_tiled` over a photo-sized image, as `swintormer deblur` runs it.
It prints medians of wall time (CPU time is not comparable: ONNX Runtime's threads are not
torch's), the ratio of the medians, and the largest output difference between the engines.

    python -m bench.cpu_engine --threads 1 --repeats 5 [--checkpoint C ...] [--batches 1 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.prior_speed import interleaved_times
from model.onnx_network import ExportShape, OnnxNetwork
from model.restorer import Restorer, load_restorer
from model.tiling import TileSettings, restore_tiled

DEFAULT_CHECKPOINTS = ("weights/default.safetensors", "weights/lite_defocus.safetensors")


def _engine(restorer: Restorer, edge: int, cache: Path, threads: int) -> tuple[OnnxNetwork, float]:
    """The session for `edge` px tiles, and the seconds its export (or cache load) took."""
    start = time.perf_counter()
    shape = ExportShape(restorer.network.config.in_channels, edge, restorer.prior is not None)
    engine = OnnxNetwork.load(restorer.network, shape, cache, threads)
    return engine, time.perf_counter() - start


def _row(label: str, wall: dict[str, list[float]], difference: float) -> str:
    torch_s, onnx_s = statistics.median(wall["torch"]), statistics.median(wall["onnx"])
    return f"| {label} | {torch_s:.3f} | {onnx_s:.3f} | {torch_s / onnx_s:.2f}x | {difference:.1e} |"


def bench_checkpoint(
    path: Path, edge: int, batches: list[int], image_px: tuple[int, int], repeats: int, cache: Path
) -> list[str]:
    restorer = load_restorer(path).eval()
    engine, export_s = _engine(restorer, edge, cache, torch.get_num_threads())
    rows = [f"\n{path.name}: session ready in {export_s:.1f} s (export or cache)\n"]
    rows.append("| what | PyTorch (s) | ONNX Runtime (s) | speed-up | max difference |")
    rows.append("|---|---:|---:|---:|---:|")
    channels = restorer.network.config.in_channels
    for batch in batches:
        generator = torch.Generator().manual_seed(batch)
        image = torch.rand(batch, channels, edge, edge, generator=generator)
        cond = None
        if restorer.prior is not None:
            grid = restorer.network.latent_grid(edge, edge)
            cond = torch.randn(batch, restorer.network.config.cond_channels, *grid)
        tiles = torch.rand(batch, restorer.image_channels, edge, edge, generator=generator)

        def run(use_engine: bool, whole: bool) -> torch.Tensor:
            restorer.engine = engine if use_engine else None
            with torch.inference_mode():
                if whole:
                    return restorer.run(tiles, seed=0).restored
                return restorer.network(image, cond=cond) if not use_engine else engine(image, cond)

        for whole, label in ((False, "network"), (True, "restorer")):
            difference = float((run(False, whole) - run(True, whole)).abs().max())
            wall, _ = interleaved_times(
                {"torch": lambda w=whole: run(False, w), "onnx": lambda w=whole: run(True, w)},
                repeats,
                torch.device("cpu"),
            )
            rows.append(_row(f"{label}, {batch} x {edge} px tiles", wall, difference))
    photo = torch.rand(1, restorer.image_channels, *image_px, generator=torch.Generator())
    settings = TileSettings(tile_px=edge, overlap_px=32, batch=max(batches))

    def tiled(use_engine: bool) -> torch.Tensor:
        restorer.engine = engine if use_engine else None
        with torch.inference_mode():
            return restore_tiled(lambda t: restorer.run(t, seed=0).restored, photo, settings)

    difference = float((tiled(False) - tiled(True)).abs().max())
    wall, _ = interleaved_times(
        {"torch": lambda: tiled(False), "onnx": lambda: tiled(True)},
        max(1, repeats // 2),
        torch.device("cpu"),
    )
    megapixels = image_px[0] * image_px[1] / 1e6
    rows.append(_row(f"{megapixels:.2f} MP image, tiles of {settings.batch}", wall, difference))
    restorer.engine = None
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="PyTorch vs ONNX Runtime on the CPU")
    parser.add_argument("--checkpoint", type=Path, nargs="*", default=None)
    parser.add_argument("--edge", type=int, default=256, help="tile edge (the worker's 256)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--image", type=int, nargs=2, default=(768, 1024), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=None, help="ONNX cache (default: temp)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoints = args.checkpoint or [Path(p) for p in DEFAULT_CHECKPOINTS]
    print(f"threads {args.threads}, medians of {args.repeats} interleaved rounds, wall time")
    with tempfile.TemporaryDirectory() as scratch:
        cache = args.cache or Path(scratch)
        for path in checkpoints:
            for line in bench_checkpoint(
                path, args.edge, args.batches, tuple(args.image), args.repeats, cache
            ):
                print(line, flush=True)


if __name__ == "__main__":
    main()
