"""`swintormer serve` + `swintormer submit` as a user runs them; both /metrics endpoints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from service.redis_server import free_port
from tests import sample_images
from tests.integration.processes import ROOT, wait_for

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def children_of(pid: int) -> list[int]:
    """Pids whose parent is `pid` (Linux /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return found


def is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def swintormer(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "swintormer", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_serve_submit_metrics_and_clean_stop(worker_env: dict[str, str], tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    env = {key: value for key, value in worker_env.items() if key != "SWINTORMER_REDIS_URL"}
    env |= {
        "SWINTORMER_PORT": str(port),
        "SWINTORMER_WORKER_METRICS_PORT": str(metrics_port),
        "SWINTORMER_DATA_DIR": str(tmp_path / "data"),
    }
    url = f"http://127.0.0.1:{port}"
    serve = subprocess.Popen(
        [sys.executable, "-m", "swintormer", "serve", "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 90, "swintormer serve to be ready", 0.25)
        children = children_of(serve.pid)
        assert len(children) == 2  # the embedded Redis and one worker

        source = tmp_path / "in.png"
        source.write_bytes(sample_images.png_rgba(70, 50))
        done = swintormer(
            "submit", str(source), "-o", str(tmp_path / "out.png"), "--url", url,
            "--no-refine-blur", env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "tiles" in done.stderr  # the progress bar
        with Image.open(tmp_path / "out.png") as result:
            assert (result.size, result.mode) == ((70, 50), "RGBA")

        (tmp_path / "bad.gif").write_bytes(sample_images.gif())
        refused = swintormer(
            "submit", str(tmp_path / "bad.gif"), "-o", "x.png", "--url", url, env=env
        )
        assert refused.returncode == 1
        assert "unsupported_media_type" in refused.stderr
        # this worker's model estimates no blur, as it published: nothing to refine
        refused = swintormer(
            "submit", str(source), "-o", "x.png", "--url", url, "--refine-blur", env=env
        )
        assert refused.returncode == 1
        assert "does not estimate the blur" in refused.stderr

        worker_metrics = samples(httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text)
        assert worker_metrics[("swintormer_worker_jobs_total", (("outcome", "ok"),))] == 1
        assert worker_metrics[("swintormer_worker_pixels_total", ())] == 70 * 50
        assert worker_metrics[("swintormer_worker_tiles_total", ())] >= 1
        assert (
            worker_metrics[("swintormer_worker_job_duration_seconds_count", (("outcome", "ok"),))]
            == 1
        )
        assert worker_metrics[("swintormer_worker_inference_duration_seconds_count", ())] == 1
        assert worker_metrics[("swintormer_worker_queue_wait_seconds_count", ())] == 1
        assert worker_metrics[("swintormer_worker_model_ready", ())] == 1
        assert worker_metrics[("swintormer_worker_tile_batch", ())] == 1  # the fixed setting
        assert worker_metrics[("swintormer_worker_model_load_seconds", ())] > 0
        assert ("swintormer_worker_vram_allocated_bytes", ()) in worker_metrics

        gateway_metrics = samples(httpx.get(f"{url}/metrics").text)
        assert gateway_metrics[("swintormer_jobs_submitted_total", (("outcome", "accepted"),))] == 1
        assert (
            gateway_metrics[("swintormer_jobs_submitted_total", (("outcome", "unsupported"),))] == 1
        )
        assert gateway_metrics[("swintormer_queue_jobs", (("state", "finished"),))] == 1
        assert gateway_metrics[("swintormer_workers", (("state", "idle"),))] == 1
    finally:
        serve.send_signal(signal.SIGTERM)
        output, _ = serve.communicate(timeout=60)
    assert serve.returncode == 0, output
    wait_for(lambda: not any(is_running(pid) for pid in children), 10, "the children to be gone")


def test_serve_without_a_checkpoint_exits_with_the_reason(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    env = {key: value for key, value in worker_env.items() if key != "SWINTORMER_REDIS_URL"}
    env |= {
        "SWINTORMER_PORT": str(free_port()),
        "SWINTORMER_CHECKPOINT": "/nonexistent.safetensors",
        "SWINTORMER_DATA_DIR": str(tmp_path / "data"),
    }
    finished = swintormer("serve", env=env)
    assert finished.returncode == 1
    assert "SWINTORMER_CHECKPOINT" in finished.stdout + finished.stderr


def serve_env(worker_env: dict[str, str], data_dir: Path, **extra: str) -> dict[str, str]:
    """A `swintormer serve` environment: its own port and data directory, embedded Redis."""
    env = {key: value for key, value in worker_env.items() if key != "SWINTORMER_REDIS_URL"}
    env |= {"SWINTORMER_PORT": str(free_port()), "SWINTORMER_DATA_DIR": str(data_dir)}
    return env | extra


def start_serve(env: dict[str, str], workers: int = 1) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "swintormer", "serve", "--workers", str(workers)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def url_of(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['SWINTORMER_PORT']}"


def answers(url: str, path: str, status: int = 200) -> bool:
    try:
        return httpx.get(f"{url}{path}", timeout=2).status_code == status
    except httpx.TransportError:
        return False


def stop(serve: subprocess.Popen[str]) -> str:
    serve.send_signal(signal.SIGTERM)
    output, _ = serve.communicate(timeout=90)
    return output


def job_status(url: str, job_id: str) -> str:
    return str(httpx.get(f"{url}/jobs/{job_id}", timeout=5).json()["status"])


def upload(url: str, size: int) -> str:
    files = {"file": ("in.png", sample_images.png_rgb(size, size))}
    response = httpx.post(f"{url}/deblur", files=files, timeout=10)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def worker_pids(serve_pid: int) -> list[int]:
    return [
        pid
        for pid in children_of(serve_pid)
        if b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def test_serve_restarts_a_killed_worker_and_a_second_serve_runs_beside_it(
    worker_env: dict[str, str], tmp_path: Path
) -> None:
    metrics_port = str(free_port())
    first_env = serve_env(worker_env, tmp_path / "a", SWINTORMER_WORKER_METRICS_PORT=metrics_port)
    first, url = start_serve(first_env), url_of(first_env)
    second: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: answers(url, "/readyz"), 90, "serve to be ready", 0.25)
        job_id = upload(url, 512)
        wait_for(
            lambda: httpx.get(f"{url}/jobs/{job_id}").json()["progress"]["done"] > 0,
            60,
            "the job to start",
        )
        (killed,) = worker_pids(first.pid)
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: job_status(url, job_id) == "succeeded", 60, "the killed job", 0.5)
        assert first.poll() is None
        assert worker_pids(first.pid) not in ([], [killed])  # a new worker

        # a second serve on the same machine: the taken worker metrics port is replaced
        second_env = serve_env(
            worker_env, tmp_path / "b", SWINTORMER_WORKER_METRICS_PORT=metrics_port
        )
        second = start_serve(second_env)
        wait_for(lambda: answers(url_of(second_env), "/readyz"), 90, "the second serve", 0.25)
        # ... but the same data directory or gateway port is refused, saying what moves it
        same_dir = swintormer("serve", env=serve_env(worker_env, tmp_path / "a"))
        assert same_dir.returncode == 1
        assert "SWINTORMER_DATA_DIR" in same_dir.stderr
        same_port = swintormer(
            "serve",
            env=serve_env(worker_env, tmp_path / "c", SWINTORMER_PORT=first_env["SWINTORMER_PORT"]),
        )
        assert same_port.returncode == 1
        assert "SWINTORMER_PORT" in same_port.stderr
    finally:
        output = stop(first)
        if second is not None:
            stop(second)
    assert "exited with status -9" in output
    assert first.returncode == 0, output


def test_a_restarted_serve_still_has_its_queue(worker_env: dict[str, str], tmp_path: Path) -> None:
    env = serve_env(worker_env, tmp_path / "data")
    gateway_only, url = start_serve(env, workers=0), url_of(env)
    try:
        wait_for(lambda: answers(url, "/healthz"), 60, "serve to answer", 0.25)
        jobs = [upload(url, 64), upload(url, 96)]
    finally:
        stop(gateway_only)
    serve = start_serve(env, workers=1)
    try:
        wait_for(lambda: answers(url, "/healthz"), 60, "serve to answer", 0.25)
        wait_for(
            lambda: all(job_status(url, job_id) == "succeeded" for job_id in jobs),
            90,
            "the queued jobs",
            0.5,
        )
    finally:
        stop(serve)
