"""`swintormer gateway`, the gateway container's command: serves on the configured port against
the configured Redis, stops cleanly on SIGTERM, and refuses to start without a Redis URL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _environment(**settings: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("SWINTORMER_")}
    env.update(settings)
    return env


@pytest.mark.integration
def test_serves_health_and_stops_on_sigterm(redis_url: str) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "swintormer", "gateway", "--port", str(port)],
        env=_environment(SWINTORMER_REDIS_URL=redis_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "the gateway did not answer in 30 s"
                time.sleep(0.2)
        assert response.status_code == 200
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert "swintormer_redis_up 1.0" in metrics.text
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
        # uvicorn shuts down gracefully, then re-raises the signal it caught
        assert "Finished server process" in output
        assert process.returncode in {0, -signal.SIGTERM}
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_refuses_to_start_without_a_redis_url() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "swintormer", "gateway"],
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "SWINTORMER_REDIS_URL" in result.stderr
