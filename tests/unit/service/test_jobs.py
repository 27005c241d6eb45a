"""`service.jobs.reap_abandoned`: a job is requeued when its worker is dead, not when Redis was
away, on a real Redis server with RQ's own worker bookkeeping.

"Looks" are the reaper's earlier calls, recorded in a sorted set of their times; tests add one
to stand for a look made some seconds ago.
"""

from __future__ import annotations

import time

import pytest
import redis
from rq import Queue, SimpleWorker
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from service.config import Settings
from service.jobs import (
    REAP_LOCK_KEY,
    REAP_LOOKS_KEY,
    REQUEUED_WITHIN_GRACES,
    clean_registries,
    input_ttl_s,
    job_view,
    make_queue,
    reap_abandoned,
)
from service.storage import Storage
from tests.queued_jobs import heartbeat_expires, submitted, taken

GRACE_S = 30.0


SETTINGS = Settings(abandoned_grace_s=int(GRACE_S))


@pytest.fixture
def queue(redis_client: redis.Redis) -> Queue:
    return make_queue(redis_client, SETTINGS)


def running(queue: Queue) -> tuple[Job, Execution, Job]:
    """A job a worker has taken (started, with its registry entry) and one queued behind it."""
    job = submitted(queue, SETTINGS)
    behind = submitted(queue, SETTINGS)
    return job, taken(queue, job), behind


def looked(queue: Queue, at: float) -> None:
    """Stand for a reaper's look at time `at`, and let the next call take the lock."""
    queue.connection.zadd(f"{REAP_LOOKS_KEY}:{queue.name}", {repr(at): at})
    queue.connection.delete(REAP_LOCK_KEY)


def looks(queue: Queue) -> list[float]:
    """The recorded looks' times, oldest first."""
    key = f"{REAP_LOOKS_KEY}:{queue.name}"
    entries = queue.connection.zrange(key, 0, -1, withscores=True)
    return [float(entry[1]) for entry in entries]


def status(job: Job) -> JobStatus | None:
    return job.get_status(refresh=True)


def test_a_job_seen_expired_and_silent_for_a_grace_is_requeued_at_the_front(
    queue: Queue,
) -> None:
    job, execution, behind = running(queue)
    now = time.time()
    heartbeat_expires(queue, execution, now - 2 * GRACE_S)
    looked(queue, now - GRACE_S - 1)  # the entry had expired by then, and nothing since
    reap_abandoned(queue, GRACE_S)
    assert status(job) == JobStatus.QUEUED
    assert queue.get_job_ids() == [job.id, behind.id]
    assert job.id not in StartedJobRegistry(queue=queue)


def test_the_first_look_only_starts_watching(queue: Queue) -> None:
    job, execution, _ = running(queue)
    heartbeat_expires(queue, execution, time.time() - 10 * GRACE_S)
    reap_abandoned(queue, GRACE_S)  # no look before this one: Redis may just be back
    assert status(job) == JobStatus.STARTED
    assert looks(queue) == [pytest.approx(time.time(), abs=5)]


def test_looks_less_than_a_grace_old_reap_nothing(queue: Queue) -> None:
    job, execution, _ = running(queue)
    now = time.time()
    heartbeat_expires(queue, execution, now - 10 * GRACE_S)
    looked(queue, now - GRACE_S / 2)
    reap_abandoned(queue, GRACE_S)
    assert status(job) == JobStatus.STARTED
    assert len(looks(queue)) == 2  # the earlier look still counts, a grace after it was made


def test_only_recent_looks_are_kept(queue: Queue) -> None:
    now = time.time()
    for graces in (10, 5, 2, 1.5):
        looked(queue, now - graces * GRACE_S)
    reap_abandoned(queue, GRACE_S)
    assert looks(queue)[:2] == [now - 2 * GRACE_S, now - 1.5 * GRACE_S]
    assert len(looks(queue)) == 3


def test_an_entry_that_expired_during_an_outage_is_left_to_its_live_worker(
    queue: Queue,
) -> None:
    """Redis was away for two graces: the running job's heartbeats failed meanwhile. The last
    look came before the outage, so its entry had not expired then; the worker heartbeats
    within the grace that follows, and the job stays its own."""
    job, execution, _ = running(queue)
    now = time.time()
    looked(queue, now - 3 * GRACE_S)  # before the outage
    heartbeat_expires(queue, execution, now - 2 * GRACE_S)  # during it
    reap_abandoned(queue, GRACE_S)  # the first look after it
    assert status(job) == JobStatus.STARTED
    with queue.connection.pipeline() as pipeline:  # the worker's heartbeat, Redis back
        execution.heartbeat(StartedJobRegistry(queue=queue), int(GRACE_S), pipeline)
        pipeline.execute()
    looked(queue, time.time() - GRACE_S - 1)  # a grace of watching later
    reap_abandoned(queue, GRACE_S)
    assert status(job) == JobStatus.STARTED
    assert job.id not in queue.get_job_ids()


def test_a_dead_workers_job_is_requeued_after_the_grace_that_follows_its_first_sighting(
    queue: Queue,
) -> None:
    """The same outage, but the worker died in it: no heartbeat comes, the second look takes it."""
    job, execution, _ = running(queue)
    now = time.time()
    looked(queue, now - 3 * GRACE_S)
    heartbeat_expires(queue, execution, now - 2 * GRACE_S)
    reap_abandoned(queue, GRACE_S)
    assert status(job) == JobStatus.STARTED
    looked(queue, time.time() - GRACE_S - 1)  # a grace of watching later, no heartbeat
    reap_abandoned(queue, GRACE_S)
    assert status(job) == JobStatus.QUEUED


def test_workers_maintenance_reaps_by_the_same_rule(queue: Queue) -> None:
    job, execution, _ = running(queue)
    now = time.time()
    heartbeat_expires(queue, execution, now - 10 * GRACE_S)
    clean_registries(queue, GRACE_S)  # RQ's own cleanup would requeue it here
    assert status(job) == JobStatus.STARTED
    looked(queue, time.time() - GRACE_S - 1)
    clean_registries(queue, GRACE_S)
    assert status(job) == JobStatus.QUEUED


def test_an_input_outlives_every_attempt_with_its_detection_time() -> None:
    settings = Settings(abandoned_grace_s=30, job_retries=2, queued_ttl_s=600)
    timeout_s = 100
    attempt_s = timeout_s + REQUEUED_WITHIN_GRACES * 30
    assert input_ttl_s(settings, timeout_s) == 600 + 3 * attempt_s


def test_a_queued_job_counts_the_jobs_ahead_and_zero_once_a_worker_took_it(queue: Queue) -> None:
    """Between a worker's dequeue and its start the job is still 'queued' but no longer in the
    queue's list, where RQ's position is None."""
    first = submitted(queue, SETTINGS)
    second = submitted(queue, SETTINGS)
    storage = Storage(queue.connection)

    def position(job: Job) -> int | None:
        view = job_view(queue, storage, job.id)
        assert view is not None
        return view.queue_position

    assert (position(first), position(second)) == (0, 1)
    worker = SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer)
    dequeued = worker.dequeue_job_and_maintain_ttl(timeout=1)
    assert dequeued is not None
    assert dequeued[0].id == first.id
    assert status(first) == JobStatus.QUEUED
    assert (position(first), position(second)) == (0, 0)
