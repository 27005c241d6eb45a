"""Fault drill: `swintormer serve` under the faults of issue #16, on loopback, with figures.

Rerunnable and bounded (every wait has a limit; jobs are few and small): it starts its own
Redis (append-only file in a temporary directory) and `swintormer serve` processes on free
loopback ports, with an untrained `tiny` checkpoint (speed and faults do not depend on the
weights) and 64 px tiles so that every job is many tile batches. Then:

1. worker SIGKILL mid-job under `serve`: every job succeeds? how long until the killed job
   runs again? (defaults: heartbeat 10 s, abandoned after 30 s);
2. Redis restarted, then made read-only (a replica of nobody) for a while, each during a
   multi-tile job: lost jobs, worker exits, raw 500s seen by a client polling meanwhile;
3. `serve` stopped with jobs queued and started again: do they complete?
4. 40 concurrent submissions at `max_queue_depth` 5: how many admitted?
5. API key B reading, downloading, cancelling and replaying key A's job: the statuses;
6. four simultaneous uploads of a ~150 KB PNG declaring 49 MP: the gateway's peak memory;
7. a battery of ~70 malformed uploads, options, ids, methods and headers, then schemathesis
   (when installed) on the schema the gateway serves: server errors and schema violations.

    python -m bench.fault_drill [--jobs 6] [--size 512]
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx
import numpy as np
import redis
from PIL import Image

from bench.service_load import untrained_checkpoint
from service.redis_server import EmbeddedRedis, free_port

ROOT = Path(__file__).resolve().parents[1]
KEY_A, KEY_B = "drill-key-a-0001", "drill-key-b-0002"


def png(size: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def wait_until(predicate: Callable[[], bool], limit_s: float, what: str) -> float:
    """Seconds until `predicate` held; exits the drill when `limit_s` passes first."""
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        try:
            if predicate():
                return time.monotonic() - start
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"drill: {what} did not happen within {limit_s:.0f} s")


class Serve:
    """One `swintormer serve` child on a free port."""

    def __init__(self, env: dict[str, str], workers: int, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log.open("a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "swintormer", "serve", "--workers", str(workers)],
            cwd=ROOT,
            env=env | {"SWINTORMER_PORT": str(self.port)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        path = "/readyz" if workers else "/healthz"
        wait_until(lambda: httpx.get(self.url + path, timeout=2).status_code == 200, 180, "serve")

    def worker_pids(self) -> list[int]:
        found = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                lines = status.read_text().splitlines()
                cmdline = (status.parent / "cmdline").read_bytes()
            except OSError:
                continue
            if f"PPid:\t{self.process.pid}" in lines and b"worker" in cmdline:
                found.append(int(status.parent.name))
        return found

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=120)
        self.log.close()


def submit(url: str, data: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{url}/deblur", files={"file": ("d.png", data)}, headers=headers, timeout=30)


def status(url: str, job_id: str, headers: dict[str, str] | None = None) -> dict[str, object]:
    body: dict[str, object] = httpx.get(f"{url}/jobs/{job_id}", headers=headers, timeout=10).json()
    return body


def done(url: str, job_id: str) -> int:
    progress = status(url, job_id)["progress"]
    assert isinstance(progress, dict)
    return int(progress["done"])


def started_at(url: str, job_id: str) -> object:
    """When the job's current attempt started (a retry changes it)."""
    timings = status(url, job_id)["timings"]
    return timings.get("started_at") if isinstance(timings, dict) else None


def has_started(url: str, job_id: str) -> bool:
    return done(url, job_id) > 0


def all_ended(url: str, jobs: list[str]) -> bool:
    return all(status(url, job)["status"] in ("succeeded", "failed", "canceled") for job in jobs)


def outcome(url: str, jobs: list[str]) -> str:
    counts = Counter(str(status(url, job)["status"]) for job in jobs)
    return ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))


def drill_worker_kill(env: dict[str, str], log: Path, jobs: int, size: int) -> list[str]:
    serve = Serve(env, 1, log)
    try:
        ids = [submit(serve.url, png(size, seed)).json()["id"] for seed in range(jobs)]
        wait_until(lambda: done(serve.url, ids[0]) > 0, 120, "the first job to start")
        (pid,) = serve.worker_pids()
        first_start = started_at(serve.url, ids[0])
        os.kill(pid, signal.SIGKILL)
        back_s = wait_until(
            lambda: started_at(serve.url, ids[0]) not in (None, first_start),
            180,
            "the killed job to run again",
        )
        wait_until(lambda: all_ended(serve.url, ids), 600, "every job to end")
        return [
            f"worker SIGKILL mid-job, {jobs} jobs of {size} px: {outcome(serve.url, ids)}; "
            f"killed job running again after {back_s:.1f} s; serve still up: "
            f"{serve.process.poll() is None}"
        ]
    finally:
        serve.stop()


def poll_during(url: str, jobs: list[str], seconds: float) -> Counter[str]:
    """A client reading its jobs and submitting during an outage: the answers it gets."""
    seen: Counter[str] = Counter()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for response in (
            *(httpx.get(f"{url}/jobs/{job}", timeout=10) for job in jobs),
            submit(url, png(32, 0)),
        ):
            kind = response.headers.get("content-type", "")
            seen[f"{response.status_code} {'json' if 'json' in kind else kind}"] += 1
        time.sleep(0.3)
    return seen


def drill_redis(env: dict[str, str], log: Path, server: EmbeddedRedis, size: int) -> list[str]:
    serve = Serve(env, 1, log)
    lines = []
    try:
        pids = serve.worker_pids()
        for fault in ("restart", "read-only"):
            ids = [submit(serve.url, png(size, seed)).json()["id"] for seed in range(3)]
            wait_until(partial(has_started, serve.url, ids[0]), 120, "the job to start")
            if fault == "restart":
                server.stop()
                answers = poll_during(serve.url, ids, 5)  # while it is down
                server.start()
            else:
                control = redis.Redis.from_url(server.url)
                control.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
                answers = poll_during(serve.url, ids, 8)
                control.execute_command("REPLICAOF", "NO", "ONE")
                control.close()
            wait_until(partial(all_ended, serve.url, ids), 600, "every job to end")
            raw_500 = sum(n for kind, n in answers.items() if kind.startswith("500"))
            lines.append(
                f"Redis {fault} during multi-tile jobs: {outcome(serve.url, ids)}; worker exits "
                f"{0 if serve.worker_pids() == pids else 'some'}; raw 500s {raw_500}; client "
                f"saw {dict(answers)}"
            )
    finally:
        serve.stop()
    return lines


def drill_restart_depth_tenants(env: dict[str, str], log: Path, data_dir: Path) -> list[str]:
    """On `serve`'s own embedded Redis (as `make run`): tenants, admission, a restart."""
    own = {k: v for k, v in env.items() if k != "SWINTORMER_REDIS_URL"} | {
        "SWINTORMER_DATA_DIR": str(data_dir),
        "SWINTORMER_API_KEYS": f'["{KEY_A}", "{KEY_B}"]',
        "SWINTORMER_MAX_QUEUE_DEPTH": "5",
    }
    a, b = {"X-API-Key": KEY_A}, {"X-API-Key": KEY_B}
    serve = Serve(own, 0, log)
    try:
        first = submit(serve.url, png(64, 99), {**a, "Idempotency-Key": "drill-1"}).json()["id"]
        crossing = [
            httpx.request(method, f"{serve.url}{path}", headers=b, timeout=10).status_code
            for method, path in (
                ("GET", f"/jobs/{first}"),
                ("GET", f"/jobs/{first}/result"),
                ("DELETE", f"/jobs/{first}"),
            )
        ]
        replay = submit(serve.url, png(64, 99), {**b, "Idempotency-Key": "drill-1"}).json()["id"]
        with ThreadPoolExecutor(max_workers=16) as pool:
            responses = list(pool.map(lambda s: submit(serve.url, png(64, s), a), range(40)))
    finally:
        serve.stop()
    codes = [response.status_code for response in responses]
    admitted = [response.json()["id"] for response in responses if response.status_code == 202]
    waiting = [first, *admitted]
    serve = Serve(own, 1, log)
    try:
        wait_until(
            lambda: all(status(serve.url, j, a)["status"] == "succeeded" for j in waiting),
            300,
            "the queued jobs to succeed",
        )
        ended = Counter(str(status(serve.url, job, a)["status"]) for job in waiting)
    finally:
        serve.stop()
    return [
        f"40 concurrent submits at max_queue_depth 5 (2 jobs already queued): "
        f"{codes.count(202)} admitted, {codes.count(429)} refused 429, "
        f"others {sorted(set(codes) - {202, 429})}",
        f"serve stopped with {len(waiting)} of key A's jobs queued, started again: {dict(ended)}",
        f"key B on key A's job (GET, GET result, DELETE): {crossing}; B replaying A's "
        f"Idempotency-Key got its own job: {replay != first}",
    ]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def drill_decode_memory(env: dict[str, str], log: Path, data_dir: Path) -> list[str]:
    """Four simultaneous uploads of a small PNG declaring 49 MP: the gateway's peak memory."""
    own = {k: v for k, v in env.items() if k != "SWINTORMER_REDIS_URL"}
    own |= {"SWINTORMER_DATA_DIR": str(data_dir)}
    buffer = io.BytesIO()
    Image.new("RGB", (7000, 7000)).save(buffer, "PNG", compress_level=9)
    data = buffer.getvalue()
    serve = Serve(own, 0, log)
    try:
        before = peak_rss_mb(serve.process.pid)
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=4) as pool:
            codes = list(pool.map(lambda _: submit(serve.url, data).status_code, range(4)))
        seconds = time.monotonic() - start
        after = peak_rss_mb(serve.process.pid)
    finally:
        serve.stop()
    return [
        f"4 simultaneous {len(data) // 1024} KB PNGs declaring 49 MP: statuses {codes}, "
        f"gateway peak RSS {before:.0f} -> {after:.0f} MB (+{after - before:.0f}), {seconds:.1f} s"
    ]


def bad_inputs(size: int) -> list[tuple[str, str, dict[str, object]]]:
    """(method, path, httpx request arguments) of malformed uploads, options, ids, headers."""
    good = png(size, 7)
    bodies = {
        "empty": b"",
        "garbage": b"\x00\x01garbage" * 50,
        "truncated png": good[: len(good) // 3],
        "png signature only": b"\x89PNG\r\n\x1a\n",
        "broken IHDR": b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + b"\xff" * 40,
        "jpeg soi only": b"\xff\xd8\xff\xe0" + b"\x00" * 30,
        "riff not webp": b"RIFF\x00\x00\x00\x00WAVEfmt ",
        "tiff header only": b"II*\x00\x08\x00\x00\x00",
        "bigtiff garbage": b"II+\x00" + b"\xff" * 60,
        "gif": b"GIF89a" + b"\x00" * 40,
        "svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        "pdf": b"%PDF-1.7\n%%EOF",
        "zip": b"PK\x03\x04" + b"\x00" * 40,
        "png bomb": _png_header(60_000, 60_000),
        "png16 bomb": _png_header(30_000, 30_000, bit_depth=16, colour_type=2),
    }
    cases: list[tuple[str, str, dict[str, object]]] = [
        ("POST", "/deblur", {"files": {"file": ("x.png", body)}}) for body in bodies.values()
    ]
    options: list[dict[str, str]] = [
        {"quality": "0"}, {"quality": "101"}, {"quality": "abc"}, {"tile_px": "0"},
        {"tile_px": "-1"}, {"tile_px": "99999999999999999999"}, {"tile_overlap_px": "7"},
        {"tile_px": "64", "tile_overlap_px": "64"}, {"prior_steps": "0"},
        {"prior_steps": "-1"}, {"prior_steps": "1e9"}, {"seed": "-1"}, {"seed": str(2**64)},
        {"output_format": "bmp"}, {"output_format": ""}, {"unknown": "1"}, {"file": "text"},
    ]  # fmt: skip
    cases += [
        ("POST", "/deblur", {"files": {"file": ("x.png", good)}, "data": form}) for form in options
    ]
    cases += [
        ("POST", "/deblur", {"data": {"quality": "90"}}),
        ("POST", "/deblur", {"content": b"--x\r\nbroken", "headers": {
            "Content-Type": "multipart/form-data; boundary=x"}}),
        ("POST", "/deblur", {"content": b"{}", "headers": {"Content-Type": "application/json"}}),
        ("POST", "/deblur", {"content": b"x", "headers": {"Content-Type": "multipart/form-data"}}),
        ("POST", "/deblur", {"files": {"file": ("x.png", good)},
                             "headers": {"Idempotency-Key": "k" * 300}}),
        ("POST", "/deblur", {"files": {"file": ("x.png", good)},
                             "headers": {"Idempotency-Key": ""}}),
        ("POST", "/deblur", {"files": {"file": ("\x00../../etc/passwd", good)}}),
    ]  # fmt: skip
    ids = ["0" * 31, "0" * 33, "g" * 32, "../" * 10, "%00", "x" * 5000, "0" * 32]
    for job_id in ids:
        cases += [
            ("GET", f"/jobs/{job_id}", {}),
            ("GET", f"/jobs/{job_id}/result", {}),
            ("DELETE", f"/jobs/{job_id}", {}),
        ]
    for wait in ("-1", "abc", "1e308", "nan", "inf", "31"):
        cases.append(("GET", f"/jobs/{'0' * 32}", {"params": {"wait": wait}}))
    cases += [
        ("BREW", "/deblur", {}), ("PUT", f"/jobs/{'0' * 32}", {}), ("PATCH", "/healthz", {}),
        ("GET", "/healthz", {"headers": {"X-Padding": "x" * 20_000}}),
        ("GET", f"/jobs/{'0' * 32}/result", {"headers": {"If-None-Match": "*, W/\"\", ,,"}}),
        ("GET", "/metrics", {"headers": {"Accept": "\x7f" * 10}}),
    ]  # fmt: skip
    return cases


def _png_header(width: int, height: int, bit_depth: int = 8, colour_type: int = 0) -> bytes:
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    crc = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    idat = b"IDAT" + zlib.compress(b"\x00" * 1000)
    return (
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + crc
        + struct.pack(">I", len(idat) - 4) + idat + struct.pack(">I", zlib.crc32(idat))
    )  # fmt: skip


def drill_bad_input_and_schema(env: dict[str, str], log: Path, data_dir: Path) -> list[str]:
    """The malformed-input battery, then schemathesis on the served schema (if installed)."""
    own = {k: v for k, v in env.items() if k != "SWINTORMER_REDIS_URL"}
    own |= {"SWINTORMER_DATA_DIR": str(data_dir)}
    serve = Serve(own, 1, log)
    lines = []
    try:
        seen: Counter[int] = Counter()
        not_json = 0
        with httpx.Client(base_url=serve.url, timeout=60) as client:
            for method, path, arguments in bad_inputs(64):
                response = client.request(method, path, **arguments)  # type: ignore[arg-type]
                seen[response.status_code] += 1
                kind = response.headers.get("content-type", "")
                not_json += response.status_code >= 400 and "json" not in kind
        server_errors = sum(n for status, n in seen.items() if status >= 500)
        lines.append(
            f"bad-input battery, {sum(seen.values())} requests: {server_errors} server errors, "
            f"{not_json} errors not in JSON; statuses {dict(sorted(seen.items()))}"
        )
        lines.append(_schemathesis(serve.url))
    finally:
        serve.stop()
    return lines


def _schemathesis(url: str) -> str:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
        "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,"
        "content_type_conformance",
        "--max-examples", "40", "--workers", "1", "--request-timeout", "40",
        "--phases", "examples,coverage,fuzzing", "--seed", "16",
    ]  # fmt: skip
    try:
        finished = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return "schemathesis: did not finish within 900 s"
    if "No module named" in finished.stderr:
        return "schemathesis: not installed (pip install schemathesis), skipped"
    summary = [
        line.strip()
        for line in finished.stdout.splitlines()
        if "generated" in line or "ST1" in line or "Network Error" in line or "passed" in line
    ]
    return f"schemathesis (unpatched served schema, exit {finished.returncode}): " + " | ".join(
        summary[-6:]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=6, help="jobs in the worker-kill drill")
    parser.add_argument("--size", type=int, default=512, help="image edge (px) of drill jobs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="swintormer-drill-") as scratch_dir:
        scratch = Path(scratch_dir)
        server = EmbeddedRedis(data_dir=scratch / "redis").start()
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("SWINTORMER_")}
            env |= {
                "SWINTORMER_REDIS_URL": server.url,
                "SWINTORMER_CHECKPOINT": str(untrained_checkpoint("tiny", scratch)),
                "SWINTORMER_DEVICE": "cpu",
                "SWINTORMER_CPU_THREADS": "1",
                "SWINTORMER_TILE_PX": "64",
                "SWINTORMER_TILE_OVERLAP_PX": "8",
                "SWINTORMER_TILE_BATCH": "1",
                "SWINTORMER_WORKER_METRICS_PORT": "0",
                "SWINTORMER_LOG_LEVEL": "WARNING",
            }
            log = scratch / "serve.log"
            lines = drill_worker_kill(env, log, args.jobs, args.size)
            lines += drill_redis(env, log, server, args.size)
            lines += drill_restart_depth_tenants(env, log, scratch / "serve-data")
            lines += drill_decode_memory(env, log, scratch / "decode-data")
            lines += drill_bad_input_and_schema(env, log, scratch / "battery-data")
        finally:
            server.stop()
    print("\nfault drill (loopback, tiny untrained checkpoint, CPU, 64 px tiles)")
    for line in lines:
        print(f"- {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
