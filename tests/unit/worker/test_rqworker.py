"""`worker.rqworker.DeblurWorker`'s queue bookkeeping on a real Redis server: its maintenance
reaps by `service.jobs.reap_abandoned`'s rule, and a requeued copy of a job that its first
worker finished is not run again."""

from __future__ import annotations

import time

import pytest
import redis
from rq import Queue
from rq.job import JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from service.config import Settings
from service.jobs import make_queue
from tests.queued_jobs import heartbeat_expires, submitted, taken
from worker.rqworker import DeblurWorker

SETTINGS = Settings(abandoned_grace_s=30)


@pytest.fixture
def queue(redis_client: redis.Redis) -> Queue:
    return make_queue(redis_client, SETTINGS)


def deblur_worker(queue: Queue) -> DeblurWorker:
    worker = DeblurWorker([queue], connection=queue.connection, serializer=JSONSerializer)
    worker.abandoned_grace_s = SETTINGS.abandoned_grace_s
    return worker


def test_a_requeued_copy_of_a_finished_job_is_dropped_not_run(queue: Queue) -> None:
    """The job was requeued while its first worker still ran it, and that worker finished it:
    a second run would show clients 'running' after 'succeeded' (and here, with no model
    bound, fail it)."""
    job = submitted(queue, SETTINGS)
    job.set_status(JobStatus.FINISHED)
    assert queue.get_job_ids() == [job.id]
    deblur_worker(queue).work(burst=True)
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert queue.get_job_ids() == []
    assert queue.intermediate_queue.get_job_ids() == []
    assert job.id not in StartedJobRegistry(queue=queue)


def test_maintenance_leaves_a_job_whose_entry_just_expired(queue: Queue) -> None:
    """RQ's maintenance requeues any job whose registry entry expired, which after a Redis
    outage longer than the grace is every running job; this worker's waits a grace more."""
    job = submitted(queue, SETTINGS)
    heartbeat_expires(queue, taken(queue, job), time.time() - 600)
    deblur_worker(queue).clean_registries()
    assert job.get_status(refresh=True) == JobStatus.STARTED
    assert job.id in StartedJobRegistry(queue=queue)
