"""`worker.rqworker.DeblurWorker`'s queue bookkeeping on a real Redis server: its maintenance
reaps by `service.jobs.reap_abandoned`'s rule, a requeued copy of a job that its first
worker finished is not run again, and a job put back after an outage is queued once, leaves no
dequeue behind, and is left to a worker that took it meanwhile."""

from __future__ import annotations

import logging
import time

import pytest
import redis
from rq import Queue, SimpleWorker
from rq.group import Group
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


def test_a_job_put_back_before_it_started_leaves_no_dequeue_behind(queue: Queue) -> None:
    """An outage between dequeueing a job and marking it started: the job is requeued once,
    and its id does not stay in the intermediate queue, where RQ's maintenance would later
    retry or fail it even after it succeeded."""
    job = submitted(queue, SETTINGS)
    worker = deblur_worker(queue)
    assert worker.dequeue_job_and_maintain_ttl(timeout=1) is not None
    worker._put_back(job, queue, None)  # as when prepare_execution met the outage
    assert queue.get_job_ids() == [job.id]
    assert queue.intermediate_queue.get_job_ids() == []
    job.set_status(JobStatus.FINISHED)  # another worker runs it to the end
    queue.remove(job.id)
    intermediate = queue.intermediate_queue
    intermediate.cleanup(worker, queue)  # notes what it first sees there
    queue.connection.set(intermediate.get_first_seen_key(job.id), time.time() - 120)
    intermediate.cleanup(worker, queue)  # a minute later: before the fix, the job queued again
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert queue.get_job_ids() == []


def test_a_job_put_back_after_it_started_is_requeued_once(queue: Queue) -> None:
    job = submitted(queue, SETTINGS)
    worker = deblur_worker(queue)
    execution = taken(queue, job, worker)
    worker._put_back(job, queue, execution)  # its bookkeeping met the outage
    assert queue.get_job_ids() == [job.id]
    assert queue.intermediate_queue.get_job_ids() == []
    running = StartedJobRegistry(queue=queue).get_job_and_execution_ids()
    assert (job.id, execution.id) not in running


def test_a_job_reaped_and_requeued_while_its_worker_was_cut_off_is_not_queued_twice(
    queue: Queue,
) -> None:
    job = submitted(queue, SETTINGS)
    worker = deblur_worker(queue)
    execution = taken(queue, job, worker)
    queue.enqueue_job(job, at_front=True)  # what reaping did while the worker was cut off
    worker._put_back(job, queue, execution)
    assert queue.get_job_ids() == [job.id]


def test_a_job_another_worker_took_meanwhile_is_left_to_it(queue: Queue) -> None:
    job = submitted(queue, SETTINGS)
    worker = deblur_worker(queue)
    execution = taken(queue, job, worker)
    queue.enqueue_job(job, at_front=True)  # reaped while the worker was cut off
    other = SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer)
    other_execution = taken(queue, job, other)
    worker._put_back(job, queue, execution)
    assert queue.get_job_ids() == []
    assert job.get_status(refresh=True) == JobStatus.STARTED
    job.refresh()
    assert job.worker_name == other.name
    running = StartedJobRegistry(queue=queue).get_job_and_execution_ids()
    assert (job.id, other_execution.id) in running
    assert (job.id, execution.id) not in running


def test_group_maintenance_runs_without_an_info_line(
    queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    """RQ logged it at INFO on every maintenance tick (every 15 s here); it still runs: a group
    id whose group is gone is dropped, and the lock keeps other workers out until the next."""
    connection = queue.connection
    connection.sadd(Group.REDIS_GROUP_KEY, "gone")
    worker = deblur_worker(queue)
    worker.maintenance_interval = 15
    with caplog.at_level(logging.INFO):
        worker.clean_group_registries()
    assert not [r for r in caplog.records if "group registries" in r.getMessage()]
    assert not connection.sismember(Group.REDIS_GROUP_KEY, "gone")
    assert 0 < connection.ttl(Group.REDIS_GROUP_CLEANING_KEY) <= 14
