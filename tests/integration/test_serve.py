"""`swintormer serve` + `swintormer submit` as a user runs them; both /metrics endpoints."""

from __future__ import annotations

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
    env |= {"SWINTORMER_PORT": str(port), "SWINTORMER_WORKER_METRICS_PORT": str(metrics_port)}
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
            "submit", str(source), "-o", str(tmp_path / "out.png"), "--url", url, env=env
        )
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


def test_serve_without_a_checkpoint_exits_with_the_reason(worker_env: dict[str, str]) -> None:
    env = {key: value for key, value in worker_env.items() if key != "SWINTORMER_REDIS_URL"}
    env |= {
        "SWINTORMER_PORT": str(free_port()),
        "SWINTORMER_CHECKPOINT": "/nonexistent.safetensors",
    }
    finished = swintormer("serve", env=env)
    assert finished.returncode == 1
    assert "SWINTORMER_CHECKPOINT" in finished.stdout + finished.stderr
