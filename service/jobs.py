"""Jobs on RQ as the gateway sees them: enqueue by dotted path, read back as a public view.

The gateway never imports worker code: the task is named by its dotted path, arguments are
JSON (`JobPayload`), and every lifetime is explicit (RQ's defaults keep failed jobs a year).
RQ's status names are mapped to the API's own (`JobStatus`) here and nowhere else.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from rq import Queue, Retry
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.job import JobStatus as RQStatus
from rq.rate_limit import RateLimitRegistry
from rq.registry import StartedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer
from rq.worker import Worker

from service.config import Settings
from service.failures import FailureCode
from service.schemas import (
    BlurEstimate,
    ErrorDetail,
    JobPayload,
    JobStatus,
    JobView,
    Progress,
    Timings,
)
from service.storage import PREFIX, Storage

TASK = "worker.tasks.deblur"

REAP_LOCK_KEY = f"{PREFIX}:reap-lock"
REAP_LOCK_S = 2
REAP_LOOKS_KEY = f"{PREFIX}:reap-looks"  # sorted set: when `reap_abandoned` looked, per queue
# An attempt's registry entry expires one grace after its last heartbeat and is reaped at the
# first look a grace after a look that saw it expired: two graces, plus the time between looks
# (at most one more grace where a cleaner runs at least that often: `serve`, the workers).
REQUEUED_WITHIN_GRACES = 3

_RQ_TO_PUBLIC: dict[RQStatus, JobStatus] = {
    RQStatus.CREATED: JobStatus.QUEUED,
    RQStatus.QUEUED: JobStatus.QUEUED,
    RQStatus.DEFERRED: JobStatus.QUEUED,
    RQStatus.SCHEDULED: JobStatus.QUEUED,
    RQStatus.READY_TO_ENQUEUE: JobStatus.QUEUED,
    RQStatus.RATE_LIMITED: JobStatus.QUEUED,
    RQStatus.STARTED: JobStatus.RUNNING,
    RQStatus.FINISHED: JobStatus.SUCCEEDED,
    RQStatus.FAILED: JobStatus.FAILED,
    RQStatus.STOPPED: JobStatus.CANCELED,
    RQStatus.CANCELED: JobStatus.CANCELED,
}


def make_queue(connection: redis.Redis, settings: Settings) -> Queue:
    """The deblur queue with the JSON serializer both sides use."""
    return Queue(settings.queue_name, connection=connection, serializer=JSONSerializer)


def job_timeout_s(settings: Settings, width: int, height: int, runs: int = 1) -> int:
    """One attempt's time limit for an image: `job_timeout_s` plus time per megapixel, once per
    run of the whole model over the image (`Settings.model_runs`: self-ensemble copies, times
    two with blur refinement)."""
    per_run_s = settings.job_s_per_megapixel * width * height / 1e6
    return settings.job_timeout_s + math.ceil(per_run_s * runs)


def input_ttl_s(settings: Settings, timeout_s: int) -> int:
    """How long an input must live: queued time plus every attempt, abandoned ones included."""
    attempt_s = timeout_s + REQUEUED_WITHIN_GRACES * settings.abandoned_grace_s
    return settings.queued_ttl_s + (settings.job_retries + 1) * attempt_s


def enqueue(
    queue: Queue,
    storage: Storage,
    settings: Settings,
    job_id: str,
    payload: JobPayload,
    data: bytes,
    owner: str = "",
) -> Job:
    """Store the input bytes, then enqueue the job that refers to them by id.

    `owner` is the id of the API key submitting it (never the key itself); only that key sees
    the job afterwards.
    """
    runs = settings.model_runs(payload.options)
    timeout_s = job_timeout_s(settings, payload.width, payload.height, runs)
    storage.put_input(job_id, data, input_ttl_s(settings, timeout_s))
    storage.remember_job(job_id, settings.job_record_ttl_s, owner)
    return queue.enqueue_call(
        TASK,
        kwargs={"payload": payload.model_dump(mode="json")},
        job_id=job_id,
        timeout=timeout_s,
        result_ttl=settings.result_ttl_s,
        failure_ttl=settings.failure_ttl_s,
        ttl=settings.queued_ttl_s,
        # at the front: a retried job (its worker died) has waited its turn already
        retry=Retry(max=settings.job_retries, enqueue_at_front=True)
        if settings.job_retries
        else None,
        meta={"progress": {"done": 0, "total": 0}},
    )


def fetch_job(queue: Queue, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=queue.connection, serializer=queue.serializer)
    except NoSuchJobError:
        return None


def expires_at(job: Job, settings: Settings) -> datetime:
    created = as_utc(job.created_at) or datetime.now(UTC)
    return created + timedelta(seconds=settings.queued_ttl_s)


def as_utc(moment: datetime | None) -> datetime | None:
    # RQ stores naive UTC datetimes
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def public_status(job: Job, storage: Storage) -> JobStatus:
    """The API status of an existing RQ job."""
    try:
        status = _RQ_TO_PUBLIC.get(job.get_status(refresh=False), JobStatus.QUEUED)
    except InvalidJobOperation:  # the hash vanished between fetch and read
        return JobStatus.EXPIRED
    if status is JobStatus.FAILED and storage.is_cancel_requested(job.id):
        return JobStatus.CANCELED
    return status


def _failure(job: Job, meta: dict[str, Any]) -> ErrorDetail:
    error = meta.get("error")
    if isinstance(error, dict) and "code" in error and "message" in error:
        return ErrorDetail(code=str(error["code"]), message=str(error["message"]))
    result = job.latest_result()
    text = result.exc_string if result is not None and result.type == Result.Type.FAILED else ""
    if text and "AbandonedJobError" in text:
        return ErrorDetail(
            code=FailureCode.WORKER_LOST, message="the worker died on every attempt of this job"
        )
    if text and "JobTimeoutException" in text:
        return ErrorDetail(code=FailureCode.TIMEOUT, message="the job ran over its time limit")
    return ErrorDetail(code=FailureCode.INTERNAL_ERROR, message="the worker failed; see its log")


def jobs_ahead(queue: Queue, job_id: str, status: JobStatus) -> int | None:
    """Jobs ahead of a job: None unless it is queued; its place in the queue, or 0 once a
    worker has taken it off the queue and not yet started it (RQ's position is then None)."""
    if status is not JobStatus.QUEUED:
        return None
    position = queue.get_job_position(job_id)
    return 0 if position is None else position


def job_view(queue: Queue, storage: Storage, job_id: str) -> JobView | None:
    """The public view of a job; None when no job with this id was ever created."""
    job = fetch_job(queue, job_id)
    if job is None:
        if not storage.is_known(job_id):
            return None
        return JobView(
            id=job_id,
            status=JobStatus.EXPIRED,
            progress=Progress(done=0, total=0),
            queue_position=None,
            timings=None,
        )
    status = public_status(job, storage)
    meta = job.meta or {}
    progress = meta.get("progress") or {"done": 0, "total": 0}
    created = as_utc(job.created_at) or datetime.now(UTC)
    started = as_utc(job.started_at) if status is not JobStatus.QUEUED else None
    ended = as_utc(job.ended_at) if status in (JobStatus.SUCCEEDED, JobStatus.FAILED) else None
    timings = Timings(
        created_at=created,
        started_at=started,
        ended_at=ended,
        queue_wait_s=(started - created).total_seconds() if started else None,
        run_s=(ended - started).total_seconds() if started and ended else None,
        inference_s=meta.get("inference_s"),
    )
    blur = _blur(meta) if status is JobStatus.SUCCEEDED else None
    return JobView(
        id=job.id,
        status=status,
        progress=Progress(done=int(progress["done"]), total=int(progress["total"])),
        queue_position=jobs_ahead(queue, job.id, status),
        timings=timings,
        error=_failure(job, meta) if status is JobStatus.FAILED else None,
        result_url=f"/jobs/{job.id}/result" if status is JobStatus.SUCCEEDED else None,
        blur=blur,
        defocus_map_url=f"/jobs/{job.id}/defocus-map" if blur is not None else None,
    )


def _blur(meta: dict[str, Any]) -> BlurEstimate | None:
    """The estimated blur the worker wrote (models with a defocus front end), else None."""
    blur = meta.get("blur")
    return BlurEstimate.model_validate(blur) if isinstance(blur, dict) else None


def reap_abandoned(queue: Queue, grace_s: float) -> None:
    """Move jobs whose worker died back to the queue (Retry left) or to failed.

    A worker killed mid-job stops heartbeating, and its job's started-registry entry expires
    `abandoned_grace_s` after the last heartbeat; nothing moves the job until someone cleans
    the registry: the gateway does it at scrape time and on job reads, workers in their
    maintenance, `serve`'s supervisor every few seconds. A short lock keeps several cleaners
    from running at once, which could requeue one job twice.

    An expired entry alone does not prove a dead worker: while Redis was down, read-only or
    full, live workers could not heartbeat either, and every entry may have expired by the time
    it is back. So every call records when it looked (a time Redis took its write), and a job is
    reaped only if its entry had already expired at an earlier look at least `grace_s` ago and
    has not been refreshed since: a live worker heartbeats within that time once Redis is back
    (`worker_heartbeat_s` is shorter), a dead one does not. The price is detection: a dead
    worker's job is requeued two graces after its last heartbeat, plus the time between looks,
    instead of one (`REQUEUED_WITHIN_GRACES` allows for the looks).
    """
    connection = queue.connection
    if not connection.set(REAP_LOCK_KEY, b"1", nx=True, ex=REAP_LOCK_S):
        return
    looks_key = f"{REAP_LOOKS_KEY}:{queue.name}"
    now = time.time()
    # the latest earlier look that is at least a grace old
    earlier = connection.zrevrangebyscore(
        looks_key, now - grace_s, "-inf", start=0, num=1, withscores=True
    )
    with connection.pipeline() as pipeline:
        pipeline.zadd(looks_key, {repr(now): now})
        # older looks are never the latest one a grace old while looks keep coming
        pipeline.zremrangebyscore(looks_key, "-inf", now - REQUEUED_WITHIN_GRACES * grace_s)
        pipeline.execute()
    if earlier:
        StartedJobRegistry(queue=queue).cleanup(timestamp=float(earlier[0][1]))


def clean_registries(queue: Queue, grace_s: float) -> None:
    """RQ's registry maintenance (`rq.registry.clean_registries`) with `reap_abandoned` in place
    of its started-registry cleanup, which takes every expired entry for a dead worker."""
    for registry in (
        queue.finished_job_registry,
        queue.failed_job_registry,
        queue.deferred_job_registry,
        queue.ready_job_registry,
    ):
        registry.cleanup()
    for rate_limits in RateLimitRegistry.all(queue.connection):
        rate_limits.cleanup()
    reap_abandoned(queue, grace_s)


PROBE_KEY = f"{PREFIX}:write-probe"


def redis_writable(connection: redis.Redis) -> bool:
    """Whether Redis takes writes now: False when read-only (a replica) or full (noeviction).

    Raises:
        redis.ConnectionError, redis.TimeoutError: Redis does not answer at all.
    """
    try:
        connection.set(PROBE_KEY, b"1", ex=10)
    except (redis.ReadOnlyError, redis.OutOfMemoryError):
        return False
    return True


def ready_workers(queue: Queue, live_within_s: float) -> int:
    """Live workers on the queue: registered (only after loading their model) and heard from
    within `live_within_s` (idle workers every 15 s, busy ones every `worker_heartbeat_s`).

    A killed worker's registration outlives it by minutes; its silence is what tells.
    """
    since = datetime.now(UTC) - timedelta(seconds=live_within_s)
    return sum(
        1
        for worker in Worker.all(connection=queue.connection, queue=queue)
        if (heard := as_utc(worker.last_heartbeat)) is not None and heard >= since
    )
