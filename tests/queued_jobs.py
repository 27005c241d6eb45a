"""Jobs on a real Redis in the states the reaping tests need: submitted as the gateway does, taken
by a worker (started, with its registry entry), and that entry's expiry set."""

from __future__ import annotations

import uuid

from rq import Queue, SimpleWorker
from rq.executions import Execution
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from service.config import Settings
from service.jobs import enqueue
from service.schemas import DeblurOptions, JobPayload
from service.storage import Storage


def submitted(queue: Queue, settings: Settings) -> Job:
    """A job as the gateway enqueues it (retries at the front)."""
    payload = JobPayload(
        options=DeblurOptions(), filename="in.png", width=64, height=64, mode="RGB"
    )
    storage = Storage(queue.connection)
    return enqueue(queue, storage, settings, uuid.uuid4().hex, payload, b"png")


def taken(queue: Queue, job: Job, worker: SimpleWorker | None = None) -> Execution:
    """`job`, first in the queue, dequeued and started by `worker` (default: a new one), as
    RQ records it."""
    if worker is None:
        worker = SimpleWorker([queue], connection=queue.connection, serializer=JSONSerializer)
    dequeued = worker.dequeue_job_and_maintain_ttl(timeout=1)
    assert dequeued is not None
    assert dequeued[0].id == job.id
    execution = worker.prepare_execution(job)
    worker.prepare_job_execution(job, remove_from_intermediate_queue=True)
    return execution


def heartbeat_expires(queue: Queue, execution: Execution, at: float) -> None:
    """Set when the execution's registry entry expires (RQ stores whole seconds)."""
    registry = StartedJobRegistry(queue=queue)
    queue.connection.zadd(registry.key, {execution.composite_key: int(at)})
