"""A worker rides out Redis outages mid-job: a restart, and a turn as a read-only replica.

Each test runs its own Redis (with an append-only file, as production's, so a restart keeps
the queue) and one real worker; the job must succeed, the worker must still be running.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from service.gateway.app import create_app
from service.redis_server import EmbeddedRedis, free_port
from tests import sample_images
from tests.integration.processes import StartWorker, settings_from, wait_for
from tests.integration.test_pipeline import progress_done, result_image, submit, view

pytestmark = pytest.mark.integration

# ~360 tiles of 64 px, ~3.5 s on an idle core: the outage lands mid-job
SIZE = 1024


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(prefer="redis-server", data_dir=tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_gateway(own_redis: EmbeddedRedis, worker_env: dict[str, str]) -> Iterator[TestClient]:
    settings = settings_from(worker_env, redis_url=own_redis.url, redis_timeout_s=0.5)
    with TestClient(create_app(settings)) as client:
        yield client


OUTAGE_GRACE_S = "15"


def running_job(
    client: TestClient, start_worker: StartWorker, url: str
) -> tuple[str, subprocess.Popen[str]]:
    job_id = submit(client, sample_images.png_rgb(SIZE, SIZE))
    # outages here last 3-5 s: a grace longer than that keeps the job this worker's (with the
    # shared 3 s grace, a heartbeat missed during the outage makes the job look abandoned: it
    # is requeued while this worker finishes it, and runs twice)
    worker = start_worker(SWINTORMER_REDIS_URL=url, SWINTORMER_ABANDONED_GRACE_S=OUTAGE_GRACE_S)
    wait_for(lambda: progress_done(client, job_id) > 0, 60, "the job to start")
    return job_id, worker


def test_worker_rides_out_a_redis_restart_mid_job(
    own_redis: EmbeddedRedis, own_gateway: TestClient, start_worker: StartWorker
) -> None:
    job_id, worker = running_job(own_gateway, start_worker, own_redis.url)
    own_redis.stop()
    time.sleep(3)
    own_redis.start()  # same port, same append-only file
    wait_for(lambda: view(own_gateway, job_id)["status"] == "succeeded", 90, "the job", 0.3)
    assert result_image(own_gateway, job_id).size == (SIZE, SIZE)
    after = submit(own_gateway, sample_images.png_rgb(64, 64))  # the same worker goes on
    wait_for(lambda: view(own_gateway, after)["status"] == "succeeded", 60, "the next job", 0.3)
    assert worker.poll() is None


def test_worker_rides_out_read_only_redis_mid_job(
    own_redis: EmbeddedRedis, own_gateway: TestClient, start_worker: StartWorker
) -> None:
    job_id, worker = running_job(own_gateway, start_worker, own_redis.url)
    control = redis.Redis.from_url(own_redis.url)
    try:
        control.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
        time.sleep(5)  # long enough for the job to finish its tiles and fail to store them
        assert own_gateway.get("/readyz").status_code == 503
        control.execute_command("REPLICAOF", "NO", "ONE")
    finally:
        control.close()
    wait_for(lambda: view(own_gateway, job_id)["status"] == "succeeded", 90, "the job", 0.3)
    assert result_image(own_gateway, job_id).size == (SIZE, SIZE)
    after = submit(own_gateway, sample_images.png_rgb(64, 64))
    wait_for(lambda: view(own_gateway, after)["status"] == "succeeded", 60, "the next job", 0.3)
    assert worker.poll() is None
