"""The RQ entry point `worker.tasks.deblur`, kept thin: fetch bytes, restore, store, report.

RQ calls a plain function, so the warm runtime reaches it through `bind()`, which the
worker process calls once after loading the model (`SimpleWorker` runs jobs in that same
process). A model with a defocus front end also leaves its estimated
radius map (`service.defocus_map`) beside the result and its summary in the job's meta.
Failures are reported in the job's meta as `{"error": {"code", "message"}}`, the
shape the gateway shows; those that another attempt cannot fix (bad input, OOM at the
smallest tiles, timeout, cancel) use up the job's retries so RQ does not run them again.

A Redis outage during a job does not fail it: progress writes and cancel checks are skipped
while it lasts, and the reads and writes the job needs (its input, its result) wait for Redis
within the job's time limit. A job that finds its result already stored (an earlier attempt
finished but could not record it) returns it without restoring the image again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
from PIL import Image
from rq import get_current_job
from rq.job import Job
from rq.timeouts import JobTimeoutException

from service.codec import ImageRefusedError, encode
from service.config import Settings
from service.defocus_map import encode_defocus_map, summarize
from service.failures import FailureCode
from service.jobs import as_utc
from service.schemas import JobPayload
from service.storage import Storage
from service.uploads import load_upload
from worker import metrics
from worker.outages import REDIS_OUTAGES, patiently
from worker.runtime import OutOfMemoryAtMinimumError, Runtime

log = logging.getLogger(__name__)
T = TypeVar("T")

# Seconds between progress writes to Redis (the last tile is always written).
PROGRESS_INTERVAL_S = 0.25


@dataclass
class WorkerContext:
    """What a job needs from its process: the warm runtime, settings, the byte store."""

    runtime: Runtime
    settings: Settings
    storage: Storage


_context: WorkerContext | None = None


def bind(context: WorkerContext) -> None:
    """Give this process's jobs their runtime; called once by the worker before work()."""
    global _context
    _context = context


class JobFailedError(Exception):
    """A job failure with the code the API shows; `final` ones are not retried."""

    def __init__(self, code: FailureCode, message: str, final: bool = True) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.final = final


class JobCanceledError(JobFailedError):
    def __init__(self) -> None:
        super().__init__(FailureCode.CANCELED, "canceled by the client")


class _ProgressReporter:
    """Writes (done, total) to the job meta at most every PROGRESS_INTERVAL_S; checks cancel."""

    def __init__(self, job: Job, storage: Storage) -> None:
        self.job = job
        self.storage = storage
        self.last_write = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last_write < PROGRESS_INTERVAL_S:
            return
        self.last_write = now
        self.job.meta["progress"] = {"done": done, "total": total}
        try:
            self.job.save_meta()
            canceled = done < total and self.storage.is_cancel_requested(self.job.id)
        except REDIS_OUTAGES as error:  # progress is best effort; the result is what matters
            log.warning("job %s: progress not written: %s", self.job.id, error)
            return
        if canceled:
            raise JobCanceledError()


def deblur(payload: dict[str, Any]) -> dict[str, Any]:
    """Restore the job's stored input; store the encoded result; return its description."""
    if _context is None:
        raise RuntimeError("worker.tasks.deblur runs only inside `python -m worker`")
    job = get_current_job()
    assert job is not None, "called outside an RQ job"
    context = _context
    start = time.perf_counter()
    metrics.reset_job_peak(context.runtime.device)
    enqueued = as_utc(job.enqueued_at)
    if enqueued is not None:
        metrics.QUEUE_WAIT.observe((datetime.now(UTC) - enqueued).total_seconds())
    job.meta.pop("error", None)
    outcome = "failed"
    try:
        result = _run(job, JobPayload.model_validate(payload), context)
        outcome = "ok"
        return result
    except JobFailedError as failure:
        outcome = _outcome_of(failure.code)
        _fail(job, failure.code, failure.message, failure.final)
        raise
    except JobTimeoutException:
        outcome = "timeout"
        limit = job.timeout or context.settings.job_timeout_s
        _fail(job, FailureCode.TIMEOUT, f"the job ran over its limit of {limit} s", final=True)
        raise
    except REDIS_OUTAGES:
        raise  # not the job's fault: the worker puts it back once Redis returns
    except Exception as error:
        _fail(job, FailureCode.INTERNAL_ERROR, f"{type(error).__name__}: {error}", final=False)
        raise
    finally:
        metrics.record_job_peak(context.runtime.device)
        metrics.JOBS.labels(outcome).inc()
        metrics.JOB_DURATION.labels(outcome).observe(time.perf_counter() - start)


def _outcome_of(code: FailureCode) -> str:
    return {FailureCode.OUT_OF_MEMORY: "oom", FailureCode.CANCELED: "canceled"}.get(code, "invalid")


def _fail(job: Job, code: FailureCode, message: str, final: bool) -> None:
    log.warning("job %s failed: %s: %s", job.id, code, message)
    if final:
        job.retries_left = 0  # RQ reads this from the same Job object when it handles the failure
    job.meta["error"] = {"code": code.value, "message": message}
    job.save_meta()


def _store_defocus_map(job: Job, radius_px: np.ndarray, context: WorkerContext) -> None:
    """Store the estimated radius map's PNG beside the result; its summary goes in the meta."""
    settings = context.settings
    data = encode_defocus_map(radius_px, settings.png_compress_level)
    context.storage.put_defocus_map(job.id, data, settings.result_ttl_s)
    job.meta["blur"] = summarize(radius_px).model_dump()


def _run(job: Job, payload: JobPayload, context: WorkerContext) -> dict[str, Any]:
    settings, storage = context.settings, context.storage

    def patient(call: Callable[[], T]) -> T:
        return patiently(call, storage.connection, settings.redis_retry_max_s)

    if patient(lambda: storage.is_cancel_requested(job.id)):
        raise JobCanceledError()
    stored = patient(lambda: storage.get_result(job.id))
    if stored is not None:
        log.info("job %s: result already stored by an earlier attempt", job.id)
        patient(lambda: storage.delete_input(job.id))
        return _description(stored, payload)
    data = patient(lambda: storage.get_input(job.id))
    if data is None:
        raise JobFailedError(
            FailureCode.INPUT_EXPIRED, "the uploaded image expired before a worker took it"
        )
    try:
        decoded = load_upload(data, settings.max_pixels)
    except ImageRefusedError as error:
        raise JobFailedError(FailureCode.of_upload(error.code), error.message) from error

    request = context.runtime.request_for(payload.options, decoded.is_high_depth)
    try:
        context.runtime.refuse_impossible(request)
    except ValueError as error:
        raise JobFailedError(FailureCode.INVALID_OPTIONS, str(error)) from error
    try:
        outcome = context.runtime(decoded.rgb, request, _ProgressReporter(job, storage))
    except OutOfMemoryAtMinimumError as error:
        metrics.OOM_RETRIES.inc(error.oom_retries)
        raise JobFailedError(FailureCode.OUT_OF_MEMORY, str(error)) from error
    metrics.OOM_RETRIES.inc(outcome.oom_retries)

    encoded, mode = encode(
        outcome.rgb,
        decoded,
        payload.options.output_format,
        payload.options.quality,
        settings.png_compress_level,
    )
    patient(lambda: storage.put_result(job.id, encoded, settings.result_ttl_s))
    radius_px = outcome.radius_px
    if radius_px is not None:
        patient(lambda: _store_defocus_map(job, radius_px, context))
    patient(lambda: storage.delete_input(job.id))
    height, width = outcome.rgb.shape[:2]
    metrics.INFERENCE_DURATION.observe(outcome.inference_s)
    metrics.PIXELS.inc(width * height)
    metrics.TILES.inc(outcome.tile_count)
    job.meta["inference_s"] = round(outcome.inference_s, 4)
    job.meta["tiles"] = {
        "tile_px": outcome.tiles.tile_px,
        "batch": outcome.tiles.batch,
        "oom_retries": outcome.oom_retries,
    }
    patient(job.save_meta)
    return _description(encoded, payload, mode)


def _description(encoded: bytes, payload: JobPayload, mode: str | None = None) -> dict[str, Any]:
    """The job's return value: what the gateway needs to serve the stored result."""
    if mode is None:
        with Image.open(io.BytesIO(encoded)) as image:  # the header only
            mode = image.mode
    return {
        "format": payload.options.output_format.value,
        "sha256": hashlib.sha256(encoded).hexdigest(),
        "bytes": len(encoded),
        "filename": f"{payload.filename}-deblurred",
        "width": payload.width,
        "height": payload.height,
        "mode": mode,
    }
