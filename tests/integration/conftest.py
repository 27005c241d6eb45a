"""Real worker processes on the private Redis, with a tiny checkpoint made here.

Timeouts are small (`job_timeout_s`, `abandoned_grace_s`) so failure paths such as a killed
worker resolve in seconds. Every process a test starts is stopped by its pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from starlette.testclient import TestClient

from model.config import preset
from model.prior import LatentPrior, PriorConfig
from model.restorer import Restorer, save_restorer
from model.swintormer import Swintormer
from service.config import Settings
from service.gateway.app import create_app

ROOT = Path(__file__).resolve().parents[2]
LATENT_CHANNELS = 4

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
    "SWINTORMER_ABANDONED_GRACE_S": "1",
    "SWINTORMER_WORKER_METRICS_PORT": "0",
    "SWINTORMER_LOG_LEVEL": "WARNING",
}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A restorer of the `tiny` preset with a tiny prior, saved as the worker loads it."""
    torch.manual_seed(0)
    network = Swintormer(replace(preset("tiny"), cond_channels=LATENT_CHANNELS))
    prior = LatentPrior(
        PriorConfig(
            latent_channels=LATENT_CHANNELS,
            encoder_width=4,
            denoiser_width=8,
            denoiser_blocks=1,
            steps=2,
        )
    )
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_restorer(path, Restorer(network, prior), provenance={"made_by": "tests"})
    return path


@pytest.fixture
def worker_env(redis_url: str, tiny_checkpoint: Path) -> dict[str, str]:
    """Environment of a worker process (and the fields of the gateway's Settings)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SWINTORMER_")}
    env.update(SERVICE_ENV)
    env["SWINTORMER_REDIS_URL"] = redis_url
    env["SWINTORMER_CHECKPOINT"] = str(tiny_checkpoint)
    return env


def settings_from(env: dict[str, str], **overrides: object) -> Settings:
    """The gateway's Settings for the same deployment as `env`."""
    fields: dict[str, object] = {
        name.removeprefix("SWINTORMER_").lower(): value
        for name, value in env.items()
        if name.startswith("SWINTORMER_")
    }
    fields.update(overrides)
    return Settings(**fields)  # type: ignore[arg-type]


@pytest.fixture
def gateway(worker_env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings_from(worker_env))) as client:
        yield client


StartWorker = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def start_worker(worker_env: dict[str, str]) -> Iterator[StartWorker]:
    """Start `python -m worker [--burst]`; every process started is stopped at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, **env: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", *args],
            cwd=ROOT,
            env={**worker_env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


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
