"""`swintormer healthcheck`: 0 for a 200 (and a positive metric when asked), 1 otherwise."""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from swintormer import healthcheck_cli

METRICS = """# HELP swintormer_worker_ready Model loaded.
# TYPE swintormer_worker_ready gauge
swintormer_worker_ready{worker="w0"} 1.0
swintormer_worker_idle 0.0
swintormer_worker_ready_total 5.0
"""


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = {"/healthz": (200, "ok"), "/metrics": (200, METRICS)}.get(
            self.path, (503, "down")
        )
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    healthcheck_cli.add_arguments(parser)
    return healthcheck_cli.run(parser.parse_args(list(argv)))


def test_200_is_healthy(base_url: str) -> None:
    assert _run(f"{base_url}/healthz") == 0


def test_an_error_status_is_unhealthy(base_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(f"{base_url}/readyz") == 1
    assert "unhealthy" in capsys.readouterr().out


def test_nothing_listening_is_unhealthy(capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Handler) as closed:
        port = closed.server_address[1]
    assert _run(f"http://127.0.0.1:{port}/healthz", "--timeout-s", "2") == 1
    assert "unhealthy" in capsys.readouterr().out


def test_metric_must_be_present_and_positive(base_url: str) -> None:
    assert _run(f"{base_url}/metrics", "--metric", "swintormer_worker_ready") == 0
    assert _run(f"{base_url}/metrics", "--metric", "swintormer_worker_idle") == 1
    assert _run(f"{base_url}/metrics", "--metric", "swintormer_worker_missing") == 1


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("m 1", True),
        ("m 0", False),
        ('m{a="x}y"} 2.5 1700000000', True),
        ("m_other 3", False),
        ("m NaN", False),
        ("m", False),
    ],
)
def test_metric_is_positive(line: str, expected: bool) -> None:
    assert healthcheck_cli.metric_is_positive(line + "\n", "m") is expected
