"""Accepting one submission: check the options, validate the upload, deduplicate, enqueue.

The algorithm behind `POST /deblur`, kept out of the route so the route only moves HTTP in
and out (and counts outcomes) and the rules read in one place:

1. options over this server's limits, options the workers' model cannot run (as the workers
   publish it, `service.schemas.ModelLimits`) and malformed Idempotency-Keys are refused (422);
2. the upload is validated by decoding it (`service.uploads.inspect_upload`), within the
   gateway's decode budget (`service.gateway.decode_budget`);
3. an Idempotency-Key is claimed atomically: the same key with the same request answers with
   the job it created, the same key with another request is refused;
4. a full queue is refused with Retry-After;
5. the bytes are stored and the job enqueued (`service.jobs.enqueue`).
A submission that fails after step 3 (queue full, Redis failing) releases its key again.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from rq import Queue

from service.codec import ImageRefusedError
from service.config import Settings
from service.errors import ErrorCode
from service.gateway.api_errors import ApiError
from service.gateway.decode_budget import DecodeBudget, DecodeBudgetExhaustedError
from service.jobs import as_utc, enqueue, expires_at, fetch_job, jobs_ahead, public_status
from service.schemas import (
    DeblurOptions,
    JobAccepted,
    JobPayload,
    ModelLimits,
    refuse_impossible_prior_steps,
    refuse_impossible_refine_blur,
    refuse_impossible_tiling,
)
from service.storage import PREFIX, IdempotencyRecord, Storage
from service.uploads import UploadInfo, header_pixels, inspect_upload, safe_stem

MAX_IDEMPOTENCY_KEY_CHARS = 255
ADMISSION_LOCK_KEY = f"{PREFIX}:admission-lock"
# Longest a submission holds (or waits for) the admission lock: storing a 64 MiB upload.
ADMISSION_LOCK_S = 10


@dataclass(frozen=True)
class Submission:
    """One `POST /deblur` as received: the file, its name, the options and the optional key."""

    data: bytes
    filename: str | None
    options: DeblurOptions
    idempotency_key: str | None = None
    owner: str = ""  # the submitting API key's id; "" without API keys


@dataclass(frozen=True)
class Receipt:
    """The 202 body, and whether this request created the job (False: a keyed retry)."""

    accepted: JobAccepted
    is_new: bool


def request_fingerprint(data: bytes, options: DeblurOptions) -> str:
    """What makes two submissions 'the same request' for an Idempotency-Key."""
    digest = hashlib.sha256(data)
    digest.update(options.model_dump_json().encode())
    return digest.hexdigest()


def accept_submission(
    submission: Submission,
    settings: Settings,
    queue: Queue,
    storage: Storage,
    budget: DecodeBudget,
) -> Receipt:
    """Validate, deduplicate and enqueue one submission (see the module docstring).

    Raises:
        ApiError: with the code the API answers with.
    """
    _check_options(submission, settings)
    limits = storage.get_model_limits(settings.queue_name)
    _check_against_model(submission.options, settings, limits)
    pixels = min(header_pixels(submission.data), settings.max_pixels)
    try:
        with budget.reserve(pixels, settings.decode_wait_s):
            info = inspect_upload(submission.data, settings.max_pixels)
    except ImageRefusedError as error:
        raise ApiError(error.code, error.message) from error
    except DecodeBudgetExhaustedError as error:
        raise ApiError(
            ErrorCode.SERVER_BUSY,
            f"too many large images are being checked at once ({error}); retry later",
            {"Retry-After": str(settings.retry_after_s)},
        ) from error

    job_id = uuid.uuid4().hex
    key = submission.idempotency_key
    if key is not None and submission.owner:
        key = f"{submission.owner}/{key}"  # each tenant has its own Idempotency-Keys
    if key is not None:
        claim = IdempotencyRecord(job_id, request_fingerprint(submission.data, submission.options))
        existing = storage.claim_idempotency_key(key, claim, settings.idempotency_ttl_s)
        if existing is not None:
            if existing.fingerprint != claim.fingerprint:
                raise ApiError(
                    ErrorCode.IDEMPOTENCY_KEY_MISMATCH,
                    "this Idempotency-Key was used for a different request",
                )
            if fetch_job(queue, existing.job_id) is None and not storage.is_known(existing.job_id):
                raise ApiError(
                    ErrorCode.IDEMPOTENCY_KEY_IN_USE,
                    "a request with this Idempotency-Key is still being processed",
                    {"Retry-After": "1"},
                )
            return Receipt(_accepted(queue, storage, settings, existing.job_id), is_new=False)
    try:
        _enqueue_within_limits(submission, settings, queue, storage, job_id, info)
    except BaseException:
        # a submission that did not create its job must not keep its key: a retry with the
        # same key has to be able to try again (not get 409 for idempotency_ttl_s)
        if key is not None:
            with contextlib.suppress(redis.RedisError):
                storage.release_idempotency_key(key)
        raise
    if key is not None:
        storage.confirm_idempotency_key(key, settings.idempotency_ttl_s)
    return Receipt(_accepted(queue, storage, settings, job_id), is_new=True)


def _enqueue_within_limits(
    submission: Submission,
    settings: Settings,
    queue: Queue,
    storage: Storage,
    job_id: str,
    info: UploadInfo,
) -> None:
    """Admit the job unless `max_queue_depth` jobs wait: count and enqueue under one lock.

    Without it, simultaneous submissions all read the same count and all get in (40 of 40 at
    a depth of 5). The lock is a Redis lock, so it holds across gateways; it expires by itself
    if a gateway dies holding it.
    """
    payload = JobPayload(
        options=submission.options,
        filename=safe_stem(submission.filename),
        width=info.width,
        height=info.height,
        mode=info.mode,
    )
    admission = queue.connection.lock(
        ADMISSION_LOCK_KEY, timeout=ADMISSION_LOCK_S, blocking_timeout=ADMISSION_LOCK_S
    )
    with admission:
        if queue.count >= settings.max_queue_depth:
            raise ApiError(
                ErrorCode.QUEUE_FULL,
                f"{settings.max_queue_depth} jobs are waiting; retry later",
                {"Retry-After": str(settings.retry_after_s)},
            )
        enqueue(queue, storage, settings, job_id, payload, submission.data, submission.owner)


def _check_options(submission: Submission, settings: Settings) -> None:
    """Refuse options over this server's limits and a malformed Idempotency-Key (422)."""
    options, key = submission.options, submission.idempotency_key
    if options.tile_px is not None and options.tile_px > settings.max_tile_px:
        raise ApiError(
            ErrorCode.INVALID_OPTIONS, f"tile_px: at most {settings.max_tile_px} on this server"
        )
    if options.prior_steps is not None and options.prior_steps > settings.max_prior_steps:
        raise ApiError(
            ErrorCode.INVALID_OPTIONS,
            f"prior_steps: at most {settings.max_prior_steps} on this server",
        )
    if options.self_ensemble is not None and options.self_ensemble > settings.max_self_ensemble:
        raise ApiError(
            ErrorCode.INVALID_OPTIONS,
            f"self_ensemble: at most {settings.max_self_ensemble} on this server",
        )
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise ApiError(
            ErrorCode.INVALID_OPTIONS,
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters",
        )


def _check_against_model(
    options: DeblurOptions, settings: Settings, limits: ModelLimits | None
) -> None:
    """Refuse (422) options the workers' model cannot run, as far as they are known.

    Before any worker has published its limits, only the tiling that no model can run is
    refused; a job that slips through fails on the worker with `invalid_options`, unretried.
    """
    tile_px = options.tile_px or settings.tile_px
    overlap_px = (
        options.tile_overlap_px if options.tile_overlap_px is not None else settings.tile_overlap_px
    )
    try:
        refuse_impossible_tiling(tile_px, overlap_px, limits.size_multiple if limits else 1)
        if limits is not None:
            refuse_impossible_prior_steps(options.prior_steps, limits)
            refuse_impossible_refine_blur(options.refine_blur, limits)
    except ValueError as error:
        raise ApiError(ErrorCode.INVALID_OPTIONS, str(error)) from error


def _accepted(queue: Queue, storage: Storage, settings: Settings, job_id: str) -> JobAccepted:
    job = fetch_job(queue, job_id)
    if job is None:
        raise ApiError(ErrorCode.JOB_EXPIRED, f"job {job_id} has expired")
    status = public_status(job, storage)
    return JobAccepted(
        id=job_id,
        status=status,
        status_url=f"/jobs/{job_id}",
        result_url=f"/jobs/{job_id}/result",
        created_at=as_utc(job.created_at) or datetime.now(UTC),
        expires_at=expires_at(job, settings),
        queue_position=jobs_ahead(queue, job_id, status),
    )
