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
from rq.job import Job
from rq.serializers import JSONSerializer
from starlette.testclient import TestClient

from service.config import Settings
from service.gateway.app import create_app
from service.redis_server import EmbeddedRedis, free_port
from tests import sample_images
from tests.integration.processes import SERVICE_ENV, StartWorker, settings_from, wait_for
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


def running_job(
    client: TestClient, start_worker: StartWorker, url: str, size: int = SIZE, **env: str
) -> tuple[str, subprocess.Popen[str]]:
    job_id = submit(client, sample_images.png_rgb(size, size))
    worker = start_worker(SWINTORMER_REDIS_URL=url, **env)
    wait_for(lambda: progress_done(client, job_id) > 0, 60, "the job to start")
    return job_id, worker


def succeeded_once(client: TestClient, url: str, job_id: str, size: int = SIZE) -> None:
    """The job succeeds, is never taken for abandoned (no retry used), and stays succeeded for
    two graces (a requeued copy would show 'queued' or 'running' again)."""
    wait_for(lambda: view(client, job_id)["status"] == "succeeded", 90, "the job", 0.3)
    connection = redis.Redis.from_url(url)
    try:
        job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
        assert job.retries_left == Settings().job_retries
    finally:
        connection.close()
    deadline = time.monotonic() + 2 * float(SERVICE_ENV["SWINTORMER_ABANDONED_GRACE_S"])
    while time.monotonic() < deadline:
        assert view(client, job_id)["status"] == "succeeded"
        time.sleep(0.2)
    assert result_image(client, job_id).size == (size, size)


def test_worker_rides_out_a_redis_restart_mid_job(
    own_redis: EmbeddedRedis, own_gateway: TestClient, start_worker: StartWorker
) -> None:
    job_id, worker = running_job(own_gateway, start_worker, own_redis.url)
    own_redis.stop()
    time.sleep(3)  # as long as the tests' grace
    own_redis.start()  # same port, same append-only file
    succeeded_once(own_gateway, own_redis.url, job_id)
    after = submit(own_gateway, sample_images.png_rgb(64, 64))  # the same worker goes on
    wait_for(lambda: view(own_gateway, after)["status"] == "succeeded", 60, "the next job", 0.3)
    assert worker.poll() is None


def test_a_job_stays_its_workers_through_an_outage_longer_than_the_grace(
    own_redis: EmbeddedRedis, own_gateway: TestClient, start_worker: StartWorker
) -> None:
    """Redis is away for over two graces while a job runs, so its registry entry expires, and
    the job is still running when Redis is back. Status reads (which reap) come every 0.3 s,
    the worker's heartbeats every 2.5 s (production's ratio to the grace: 10 s to 30 s), so a
    reaper looks before the worker is heard again. The job must not be requeued."""
    # ~1400 tiles, ~14 s on an idle core: still running after the 8 s outage
    size = 2048
    job_id, worker = running_job(
        own_gateway, start_worker, own_redis.url, size, SWINTORMER_WORKER_HEARTBEAT_S="2.5"
    )
    own_redis.stop()
    time.sleep(8)
    own_redis.start()
    statuses = []
    while (status := view(own_gateway, job_id)["status"]) != "succeeded":
        statuses.append(status)
        assert len(statuses) < 300, statuses  # 90 s
        time.sleep(0.3)
    assert set(statuses) <= {"running"}, statuses
    succeeded_once(own_gateway, own_redis.url, job_id, size)
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
    succeeded_once(own_gateway, own_redis.url, job_id)
    after = submit(own_gateway, sample_images.png_rgb(64, 64))
    wait_for(lambda: view(own_gateway, after)["status"] == "succeeded", 60, "the next job", 0.3)
    assert worker.poll() is None
