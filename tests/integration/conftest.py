"""Real worker processes on the private Redis, with a tiny checkpoint made here.

Timeouts are small (`job_timeout_s`, `abandoned_grace_s`) so failure paths such as a killed
worker resolve in seconds. Every process a test starts is stopped by its pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from starlette.testclient import TestClient

from service.gateway.app import create_app
from tests.factories import TINY_PRIOR, save_tiny_checkpoint
from tests.integration.processes import ROOT, SERVICE_ENV, StartWorker, settings_from


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A restorer of the `tiny` preset with a tiny prior, saved as the worker loads it."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    return save_tiny_checkpoint(
        path, prior=replace(TINY_PRIOR, steps=2), provenance={"made_by": "tests"}
    )


@pytest.fixture
def worker_env(redis_url: str, tiny_checkpoint: Path) -> dict[str, str]:
    """Environment of a worker process (and the fields of the gateway's Settings)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SWINTORMER_")}
    env.update(SERVICE_ENV)
    env["SWINTORMER_REDIS_URL"] = redis_url
    env["SWINTORMER_CHECKPOINT"] = str(tiny_checkpoint)
    return env


@pytest.fixture
def gateway(worker_env: dict[str, str]) -> Iterator[TestClient]:
    with TestClient(create_app(settings_from(worker_env))) as client:
        yield client


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
