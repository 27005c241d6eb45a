"""Helpers of the integration tests: the deployment's settings, worker processes, waiting."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from service.config import Settings

ROOT = Path(__file__).resolve().parents[2]

# What every test worker and gateway share; the tile plan is small so that a 256 px image
# is many batches (progress to watch, a worker to kill mid-job).
SERVICE_ENV = {
    "SWINTORMER_DEVICE": "cpu",
    # one thread per worker: the CI machine's two cores are shared with the test process
    "SWINTORMER_CPU_THREADS": "1",
    "SWINTORMER_TILE_PX": "64",
    "SWINTORMER_TILE_OVERLAP_PX": "8",
    "SWINTORMER_TILE_BATCH": "1",
    "SWINTORMER_JOB_TIMEOUT_S": "20",
    # heartbeats every 0.5 s: a killed worker's job is found 3 s after its last one
    "SWINTORMER_WORKER_HEARTBEAT_S": "0.5",
    "SWINTORMER_ABANDONED_GRACE_S": "3",
    "SWINTORMER_WORKER_MAINTENANCE_INTERVAL_S": "1",
    "SWINTORMER_REDIS_RETRY_MAX_S": "1",
    "SWINTORMER_WORKER_METRICS_PORT": "0",
    "SWINTORMER_LOG_LEVEL": "WARNING",
}


def settings_from(env: dict[str, str], **overrides: object) -> Settings:
    """The gateway's Settings for the same deployment as `env`."""
    fields: dict[str, object] = {
        name.removeprefix("SWINTORMER_").lower(): value
        for name, value in env.items()
        if name.startswith("SWINTORMER_")
    }
    fields.update(overrides)
    return Settings(**fields)  # type: ignore[arg-type]


StartWorker = Callable[..., subprocess.Popen[str]]


def wait_for(
    predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05
) -> None:
    """Poll `predicate` until true; fail the test naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def finish_burst(process: subprocess.Popen[str], timeout_s: float = 90) -> str:
    """Wait for a burst worker to exit 0; return its output."""
    output, _ = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, output
    return output
