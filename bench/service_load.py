"""Bounded load on `swintormer serve` over loopback; prints a markdown table.

Two phases against one `swintormer serve` (embedded Redis, N workers, gateway) started here:

1. overhead: jobs one at a time; the median end-to-end time (upload -> poll -> download)
   over the median of calling the worker's `Runtime` directly on the same image in this
   process, the two interleaved in the same run: what the gateway + queue + codecs cost.
2. burst: `--jobs` submissions from `--concurrency` client threads as fast as the gateway
   takes them; submissions per second, completions per second, p50/p95/p99 end-to-end
   latency, and lost jobs (submitted but never succeeded: must be 0).

With no `--checkpoint`, an untrained checkpoint of `--preset` (with a small prior) is
written to a temporary directory: speed does not depend on the weights' values.

    python bench/service_load.py --preset tiny --size 256 --jobs 40 --concurrency 8
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch
from PIL import Image

from model.config import PRESETS, PriorConfig, preset
from model.prior import LatentPrior
from model.restorer import Restorer, save_restorer
from model.swintormer import Swintormer
from service.config import Settings
from service.redis_server import free_port
from service.schemas import DeblurOptions
from worker.runtime import Runtime

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--preset", choices=PRESETS, default="tiny")
    parser.add_argument("--size", type=int, default=256, help="square test image edge")
    parser.add_argument("--jobs", type=int, default=40, help="burst submissions")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads")
    parser.add_argument("--sequential", type=int, default=8, help="jobs in the overhead phase")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: cores/2)")
    return parser.parse_args()


def untrained_checkpoint(name: str, directory: Path) -> Path:
    latent = 16
    network = Swintormer(replace(preset(name), cond_channels=latent))
    prior = LatentPrior(PriorConfig(latent_channels=latent, encoder_width=16, denoiser_width=32))
    path = directory / f"untrained-{name}.safetensors"
    save_restorer(path, Restorer(network, prior), provenance={"made_by": "bench/service_load.py"})
    return path


def test_image(size: int) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def direct_runtime(settings: Settings, data: bytes) -> Callable[[], float]:
    """A warm worker runtime in this process; the returned call times one restoration."""
    runtime = Runtime(settings)
    runtime.setup()
    runtime.warmup()
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32) / 255
    request = runtime.request_for(DeblurOptions())

    def timed() -> float:
        start = time.perf_counter()
        runtime(rgb, request)
        return time.perf_counter() - start

    return timed


def submit(client: httpx.Client, data: bytes) -> str:
    response = client.post("/deblur", files={"file": ("bench.png", data)})
    response.raise_for_status()
    return str(response.json()["id"])


def wait_and_fetch(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    """Follow a job to the end and download its result; its timings, or None if it failed."""
    while True:
        view = client.get(f"/jobs/{job_id}", params={"wait": 10}).json()
        if view["status"] in ("succeeded", "failed", "canceled", "expired"):
            break
    if view["status"] != "succeeded":
        return None
    if client.get(f"/jobs/{job_id}/result").status_code != 200:
        return None
    timings: dict[str, Any] = view["timings"]
    return timings


def one_job(url: str, data: bytes) -> tuple[float, dict[str, Any] | None]:
    with httpx.Client(base_url=url, timeout=60) as client:
        start = time.perf_counter()
        timings = wait_and_fetch(client, submit(client, data))
        return time.perf_counter() - start, timings


def burst(url: str, data: bytes, jobs: int, concurrency: int) -> dict[str, float]:
    submitted: dict[str, float] = {}
    lock = threading.Lock()

    def submit_one(_: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            job_id = submit(client, data)
            with lock:
                submitted[job_id] = time.perf_counter()

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(submit_one, range(jobs)))
    submit_s = time.perf_counter() - start

    latencies: list[float] = []
    lost = 0

    def follow(job_id: str) -> None:
        nonlocal lost
        with httpx.Client(base_url=url, timeout=60) as client:
            ok = wait_and_fetch(client, job_id) is not None
        with lock:
            if ok:
                latencies.append(time.perf_counter() - submitted[job_id])
            else:
                lost += 1

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(follow, list(submitted)))
    total_s = time.perf_counter() - start
    quantiles = np.quantile(latencies, [0.5, 0.95, 0.99]) if latencies else [float("nan")] * 3
    return {
        "submit_per_s": jobs / submit_s,
        "done_per_s": len(latencies) / total_s,
        "p50": float(quantiles[0]),
        "p95": float(quantiles[1]),
        "p99": float(quantiles[2]),
        "lost": float(lost + jobs - len(submitted)),
    }


def main() -> int:
    args = parse_args()
    # the worker and this process (the direct baseline) use the same thread count
    threads = args.threads or max(1, (os.cpu_count() or 2) // 2)
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = args.checkpoint or untrained_checkpoint(args.preset, Path(scratch))
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWINTORMER_")}
        env |= {
            "SWINTORMER_CHECKPOINT": str(checkpoint),
            "SWINTORMER_DEVICE": args.device,
            "SWINTORMER_PORT": str(port),
            "SWINTORMER_WORKER_METRICS_PORT": "0",
            "SWINTORMER_MAX_QUEUE_DEPTH": str(max(200, args.jobs)),
            "SWINTORMER_LOG_LEVEL": "WARNING",
            "SWINTORMER_CPU_THREADS": str(threads),
        }
        settings = Settings(checkpoint=checkpoint, device=args.device)
        data = test_image(args.size)
        serve = subprocess.Popen(
            [sys.executable, "-m", "swintormer", "serve", "--workers", str(args.workers)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            else:
                raise SystemExit("swintormer serve did not become ready in 180 s")
            one_job(url, data)  # first request: connection set-up, caches
            direct = direct_runtime(settings, data)
            # interleaved, so that both see the same (noisy) machine
            direct_times, sequential = [], []
            for _ in range(args.sequential):
                direct_times.append(direct())
                sequential.append(one_job(url, data))
            direct_s = statistics.median(direct_times)
            end_to_end_s = statistics.median(seconds for seconds, _ in sequential)
            lost_sequential = sum(1 for _, timings in sequential if timings is None)
            done = [timings for _, timings in sequential if timings is not None]
            queue_wait_s = statistics.median(t["queue_wait_s"] for t in done)
            run_s = statistics.median(t["run_s"] for t in done)
            inference_s = statistics.median(t["inference_s"] for t in done)
            load = burst(url, data, args.jobs, args.concurrency)
        finally:
            serve.send_signal(signal.SIGTERM)
            serve.wait(timeout=120)

    batch = settings.tile_batch or "auto"
    print(
        f"\nservice load: preset {args.preset if not args.checkpoint else checkpoint.name}, "
        f"{args.size}x{args.size} PNG, {args.workers} worker(s) on {args.device}, "
        f"tiles {settings.tile_px}/{settings.tile_overlap_px} batch {batch}\n"
    )
    p50, p95, p99 = load["p50"], load["p95"], load["p99"]
    rows = [
        ("direct Runtime call (same image, this process)", args.sequential, "median s",
         f"{direct_s:.3f}"),
        ("one job at a time through the service", args.sequential, "median end-to-end s",
         f"{end_to_end_s:.3f}"),
        ("", "", "of which queue wait / worker run / inference s (medians)",
         f"{queue_wait_s:.3f} / {run_s:.3f} / {inference_s:.3f}"),
        ("", "", "overhead ratio (service / direct)", f"{end_to_end_s / direct_s:.2f}"),
        ("", "", "lost jobs", str(lost_sequential)),
        (f"burst, {args.concurrency} clients", args.jobs, "submissions/s",
         f"{load['submit_per_s']:.1f}"),
        ("", "", "completed jobs/s", f"{load['done_per_s']:.2f}"),
        ("", "", "end-to-end p50 / p95 / p99 s", f"{p50:.2f} / {p95:.2f} / {p99:.2f}"),
        ("", "", "lost jobs", str(int(load["lost"]))),
    ]  # fmt: skip
    print("| phase | jobs | metric | value |")
    print("|---|---|---|---|")
    for phase, jobs, metric, value in rows:
        print(f"| {phase} | {jobs} | {metric} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
