"""`POST /deblur`: validate an upload, store it, enqueue a job, answer 202 Accepted."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Response, UploadFile
from rq import Queue

from service.config import Settings
from service.deps import ApiKeyDep, MetricsDep, QueueDep, SettingsDep, StorageDep
from service.errors import ApiError, ErrorCode, error_responses
from service.jobs import as_utc, enqueue, expires_at, fetch_job, public_status
from service.schemas import DeblurOptions, JobAccepted, JobPayload, JobStatus
from service.storage import IdempotencyRecord, Storage
from service.uploads import UploadError, inspect_upload, safe_stem

router = APIRouter(tags=["deblur"], dependencies=[ApiKeyDep])

MAX_IDEMPOTENCY_KEY_CHARS = 255


def request_fingerprint(data: bytes, options: DeblurOptions) -> str:
    """What makes two submissions 'the same request' for an Idempotency-Key."""
    digest = hashlib.sha256(data)
    digest.update(options.model_dump_json().encode())
    return digest.hexdigest()


@router.post(
    "/deblur",
    status_code=202,
    response_model=JobAccepted,
    summary="Submit an image to deblur",
    responses={
        202: {
            "description": "queued; poll `Location`",
            "headers": {"Location": {"description": "/jobs/{id}", "schema": {"type": "string"}}},
        },
        **error_responses(
            ErrorCode.INVALID_IMAGE,
            ErrorCode.UNAUTHORIZED,
            ErrorCode.FORBIDDEN,
            ErrorCode.PAYLOAD_TOO_LARGE,
            ErrorCode.TOO_MANY_PIXELS,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            ErrorCode.UNSUPPORTED_BIT_DEPTH,
            ErrorCode.INVALID_OPTIONS,
            ErrorCode.IDEMPOTENCY_KEY_MISMATCH,
            ErrorCode.IDEMPOTENCY_KEY_IN_USE,
            ErrorCode.JOB_EXPIRED,
            ErrorCode.QUEUE_FULL,
            ErrorCode.REDIS_UNAVAILABLE,
        ),
    },
)
def submit(
    response: Response,
    settings: SettingsDep,
    metrics: MetricsDep,
    queue: QueueDep,
    storage: StorageDep,
    file: Annotated[UploadFile, File(description="PNG, JPEG or WebP image")],
    options: Annotated[DeblurOptions, Form()],
    idempotency_key: Annotated[
        str | None,
        Header(description="makes retries safe: the same key and body return the same job"),
    ] = None,
) -> JobAccepted:
    """Queue one image. The body is multipart: `file` plus the option fields."""
    data = file.file.read()
    metrics.upload_size.observe(len(data))
    try:
        accepted, is_new = _submit(
            response, settings, queue, storage, data, file.filename, options, idempotency_key
        )
    except ApiError as error:
        metrics.submissions.labels(_OUTCOMES.get(error.code, "invalid")).inc()
        raise
    metrics.submissions.labels("accepted" if is_new else "duplicate").inc()
    return accepted


_OUTCOMES = {
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "unsupported",
    ErrorCode.UNSUPPORTED_BIT_DEPTH: "unsupported",
    ErrorCode.TOO_MANY_PIXELS: "too_large",
    ErrorCode.PAYLOAD_TOO_LARGE: "too_large",
    ErrorCode.QUEUE_FULL: "queue_full",
}


def _submit(
    response: Response,
    settings: Settings,
    queue: Queue,
    storage: Storage,
    data: bytes,
    filename: str | None,
    options: DeblurOptions,
    idempotency_key: str | None,
) -> tuple[JobAccepted, bool]:
    """Validate, deduplicate, enqueue; return the 202 body and whether the job is new."""
    if options.tile_px is not None and options.tile_px > settings.max_tile_px:
        raise ApiError(
            ErrorCode.INVALID_OPTIONS, f"tile_px: at most {settings.max_tile_px} on this server"
        )
    if options.prior_steps is not None and options.prior_steps > settings.max_prior_steps:
        raise ApiError(
            ErrorCode.INVALID_OPTIONS,
            f"prior_steps: at most {settings.max_prior_steps} on this server",
        )
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY_CHARS:
        raise ApiError(
            ErrorCode.INVALID_OPTIONS,
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} characters",
        )
    try:
        info = inspect_upload(data, settings.max_pixels)
    except UploadError as error:
        raise ApiError(error.code, error.message) from error

    job_id = uuid.uuid4().hex
    if idempotency_key is not None:
        claim = IdempotencyRecord(job_id, request_fingerprint(data, options))
        existing = storage.claim_idempotency_key(idempotency_key, claim, settings.idempotency_ttl_s)
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
            return _accepted(response, queue, storage, settings, existing.job_id), False
    if queue.count >= settings.max_queue_depth:
        if idempotency_key is not None:
            storage.release_idempotency_key(idempotency_key)
        raise ApiError(
            ErrorCode.QUEUE_FULL,
            f"{settings.max_queue_depth} jobs are waiting; retry later",
            {"Retry-After": str(settings.retry_after_s)},
        )
    payload = JobPayload(
        options=options,
        filename=safe_stem(filename),
        width=info.width,
        height=info.height,
        mode=info.mode,
    )
    enqueue(queue, storage, settings, job_id, payload, data)
    return _accepted(response, queue, storage, settings, job_id), True


def _accepted(
    response: Response, queue: Queue, storage: Storage, settings: Settings, job_id: str
) -> JobAccepted:
    job = fetch_job(queue, job_id)
    if job is None:
        raise ApiError(ErrorCode.JOB_EXPIRED, f"job {job_id} has expired")
    status = public_status(job, storage)
    response.headers["Location"] = f"/jobs/{job_id}"
    return JobAccepted(
        id=job_id,
        status=status,
        status_url=f"/jobs/{job_id}",
        result_url=f"/jobs/{job_id}/result",
        created_at=as_utc(job.created_at) or datetime.now(UTC),
        expires_at=expires_at(job, settings),
        queue_position=queue.get_job_position(job_id) if status is JobStatus.QUEUED else None,
    )
