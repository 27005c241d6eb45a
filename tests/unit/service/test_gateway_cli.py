"""`swintormer gateway`, the container image's default command: refuses to start without a
Redis URL, saying what to set; serves against a real Redis and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from swintormer.cli import main


def test_gateway_without_redis_url_explains(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("SWINTORMER_"):
            monkeypatch.delenv(name)
    assert main(["gateway", "--port", "8123"]) == 2
    assert "SWINTORMER_REDIS_URL" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.integration
def test_serves_health_and_metrics_then_stops_on_sigterm(redis_url: str) -> None:
    port = _free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("SWINTORMER_")}
    env["SWINTORMER_REDIS_URL"] = redis_url
    process = subprocess.Popen(
        [sys.executable, "-m", "swintormer", "gateway", "--port", str(port)],
        env=env,
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
                assert process.poll() is None, "the gateway exited before it answered"
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
