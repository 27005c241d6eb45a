"""`/jobs/{id}`: status (with long-polling), result and defocus-map downloads, cancel."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.concurrency import run_in_threadpool
from rq import Queue

from service.config import Settings
from service.defocus_map import PX_PER_LEVEL, SCALE_HEADER
from service.errors import ErrorCode
from service.gateway.api_errors import ApiError, error_responses
from service.gateway.deps import ApiKeyDep, QueueDep, SettingsDep, StorageDep, TenantDep
from service.jobs import fetch_job, job_view, reap_abandoned
from service.schemas import MEDIA_TYPES, TERMINAL, JobStatus, JobView, OutputFormat
from service.storage import Storage

router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[ApiKeyDep])

JobId = Annotated[str, Path(description="the id POST /deblur gave")]
_JOB_ID = re.compile(r"[0-9a-f]{32}")
# Long-poll re-reads: fast at first (short jobs end within a few tens of ms of their last
# tile), then backing off so that a 30 s wait costs ~70 Redis reads, not hundreds.
POLL_FIRST_S = 0.02
POLL_GROWTH = 1.5
POLL_MAX_S = 0.5


def _view_or_404(queue: QueueDep, storage: Storage, job_id: str, tenant: str) -> JobView:
    # another tenant's job is answered exactly like one that does not exist
    is_theirs = _JOB_ID.fullmatch(job_id) and storage.owner_of(job_id) == tenant
    view = job_view(queue, storage, job_id) if is_theirs else None
    if view is None:
        raise ApiError(ErrorCode.JOB_NOT_FOUND, f"no job {job_id}")
    return view


def _status(queue: Queue, storage: Storage, job_id: str, tenant: str, grace_s: float) -> JobView:
    """A status read: the job's view, and a registry cleanup while it is running (a worker
    killed mid-job leaves it 'started'; reaping here lets it be retried)."""
    view = _view_or_404(queue, storage, job_id, tenant)
    if view.status is JobStatus.RUNNING:
        reap_abandoned(queue, grace_s)
    return view


@router.get(
    "/{job_id}",
    response_model=JobView,
    summary="Job status, progress, timings",
    responses=error_responses(
        ErrorCode.METHOD_NOT_ALLOWED,
        ErrorCode.UNAUTHORIZED,
        ErrorCode.FORBIDDEN,
        ErrorCode.JOB_NOT_FOUND,
        ErrorCode.INVALID_OPTIONS,
        ErrorCode.REDIS_UNAVAILABLE,
    ),
)
async def get_job(
    job_id: JobId,
    queue: QueueDep,
    storage: StorageDep,
    settings: SettingsDep,
    tenant: TenantDep,
    wait: Annotated[
        float,
        Query(
            ge=0,
            description="long-poll: wait up to this many seconds for the status or "
            "progress to change; longer waits are cut to the server's max_wait_s (30 by default)",
        ),
    ] = 0,
) -> JobView:
    """The job's state. With `wait`, answers as soon as its status or progress changes."""
    wait = min(wait, settings.max_wait_s)
    view = await run_in_threadpool(
        _status, queue, storage, job_id, tenant, settings.abandoned_grace_s
    )
    deadline = time.monotonic() + wait
    first = (view.status, view.progress)
    interval = POLL_FIRST_S
    while view.status not in TERMINAL and time.monotonic() < deadline:
        await asyncio.sleep(min(interval, max(deadline - time.monotonic(), 0)))
        interval = min(interval * POLL_GROWTH, POLL_MAX_S)
        view = await run_in_threadpool(
            _status, queue, storage, job_id, tenant, settings.abandoned_grace_s
        )
        if (view.status, view.progress) != first:
            break
    return view


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110: `*` matches any current representation; else a list of (weak) tags."""
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _result_headers(etag: str, filename: str) -> dict[str, str]:
    return {
        "ETag": etag,
        "Content-Disposition": f'inline; filename="{filename}"',
        "Cache-Control": "private, max-age=0",
        "X-Content-Type-Options": "nosniff",
    }


def _succeeded_view(
    queue: QueueDep, storage: StorageDep, job_id: str, what: str, tenant: str
) -> JobView:
    """The job's view, if it succeeded; else the API error a download of `what` gets."""
    view = _view_or_404(queue, storage, job_id, tenant)
    if view.status in (JobStatus.QUEUED, JobStatus.RUNNING):
        raise ApiError(
            ErrorCode.RESULT_NOT_READY,
            f"job {job_id} is {view.status.value}",
            {"Retry-After": "1"},
        )
    if view.status is JobStatus.EXPIRED:
        raise ApiError(ErrorCode.JOB_EXPIRED, f"job {job_id} and {what} have expired")
    if view.status is not JobStatus.SUCCEEDED:
        raise ApiError(ErrorCode.JOB_NOT_SUCCEEDED, f"job {job_id} {view.status.value}")
    return view


@router.get(
    "/{job_id}/result",
    summary="Download the deblurred image",
    response_class=Response,
    responses={
        200: {
            "description": "the image, encoded as asked (PNG by default)",
            "content": {media: {} for media in MEDIA_TYPES.values()},
            "headers": {
                "ETag": {"schema": {"type": "string"}},
                "Content-Disposition": {"schema": {"type": "string"}},
            },
        },
        304: {"description": "If-None-Match matched the ETag"},
        **error_responses(
            ErrorCode.UNAUTHORIZED,
            ErrorCode.FORBIDDEN,
            ErrorCode.JOB_NOT_FOUND,
            ErrorCode.RESULT_NOT_READY,
            ErrorCode.JOB_NOT_SUCCEEDED,
            ErrorCode.JOB_EXPIRED,
            ErrorCode.INVALID_OPTIONS,
            ErrorCode.REDIS_UNAVAILABLE,
        ),
    },
)
def get_result(
    job_id: JobId,
    queue: QueueDep,
    storage: StorageDep,
    tenant: TenantDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The result image, once the job has succeeded, until `result_ttl_s` after that."""
    _succeeded_view(queue, storage, job_id, "its result", tenant)
    job = fetch_job(queue, job_id)
    meta = job.return_value() if job is not None else None
    data = storage.get_result(job_id)
    if not isinstance(meta, dict) or data is None:
        raise ApiError(ErrorCode.JOB_EXPIRED, f"the result of job {job_id} has expired")
    output_format = OutputFormat(meta["format"])
    etag = f'"{meta["sha256"]}"'
    headers = _result_headers(etag, f"{meta['filename']}.{output_format.value}")
    if if_none_match is not None and _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=MEDIA_TYPES[output_format], headers=headers)


# HEAD answers as GET does, without the body (not a second operation in the schema)
router.add_api_route("/{job_id}/result", get_result, methods=["HEAD"], include_in_schema=False)


@router.delete(
    "/{job_id}",
    response_model=JobView,
    summary="Cancel a queued or running job",
    responses={
        200: {"description": "the job was queued and is now canceled"},
        202: {"description": "the job is running; its worker stops at the next tile batch"},
        **error_responses(
            ErrorCode.UNAUTHORIZED,
            ErrorCode.FORBIDDEN,
            ErrorCode.JOB_NOT_FOUND,
            ErrorCode.JOB_FINISHED,
            ErrorCode.JOB_EXPIRED,
            ErrorCode.INVALID_OPTIONS,
            ErrorCode.REDIS_UNAVAILABLE,
        ),
    },
)
def cancel_job(
    job_id: JobId,
    response: Response,
    queue: QueueDep,
    storage: StorageDep,
    settings: SettingsDep,
    tenant: TenantDep,
) -> JobView:
    """Cancel a job. A queued job is dropped at once; a running one stops cooperatively."""
    view = _view_or_404(queue, storage, job_id, tenant)
    if view.status is JobStatus.EXPIRED:
        raise ApiError(ErrorCode.JOB_EXPIRED, f"job {job_id} has expired")
    if view.status in TERMINAL:
        raise ApiError(ErrorCode.JOB_FINISHED, f"job {job_id} already {view.status.value}")
    storage.request_cancel(job_id, _cancel_ttl_s(settings))
    job = fetch_job(queue, job_id)
    if view.status is JobStatus.QUEUED and job is not None:
        job.cancel()
        storage.delete_input(job_id)
    else:
        response.status_code = 202
    new_view = job_view(queue, storage, job_id)
    assert new_view is not None
    return new_view


def _cancel_ttl_s(settings: Settings) -> int:
    # the flag must outlive the job's failure record so its status keeps reading 'canceled'
    return settings.failure_ttl_s + settings.job_timeout_s


@router.get(
    "/{job_id}/defocus-map",
    summary="Download the estimated defocus radius map (16-bit grey PNG)",
    response_class=Response,
    responses={
        200: {
            "description": "the estimated defocus radius per pixel, at the result's size: "
            f"grey level v means v * {PX_PER_LEVEL} px (16-bit PNG, so 0 to 65.535 px)",
            "content": {"image/png": {}},
            "headers": {
                "ETag": {"schema": {"type": "string"}},
                "Content-Disposition": {"schema": {"type": "string"}},
                SCALE_HEADER: {
                    "description": "pixels of radius per grey level",
                    "schema": {"type": "number"},
                },
            },
        },
        304: {"description": "If-None-Match matched the ETag"},
        **error_responses(
            ErrorCode.UNAUTHORIZED,
            ErrorCode.FORBIDDEN,
            ErrorCode.JOB_NOT_FOUND,
            ErrorCode.NO_DEFOCUS_MAP,
            ErrorCode.RESULT_NOT_READY,
            ErrorCode.JOB_NOT_SUCCEEDED,
            ErrorCode.JOB_EXPIRED,
            ErrorCode.INVALID_OPTIONS,
            ErrorCode.REDIS_UNAVAILABLE,
        ),
    },
)
def get_defocus_map(
    job_id: JobId,
    queue: QueueDep,
    storage: StorageDep,
    tenant: TenantDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The blur the model estimated, as a radius map; kept as long as the result."""
    view = _succeeded_view(queue, storage, job_id, "its defocus map", tenant)
    if view.blur is None:
        raise ApiError(
            ErrorCode.NO_DEFOCUS_MAP,
            f"job {job_id} was restored by a model without a defocus front end: "
            "it estimated no blur",
        )
    job = fetch_job(queue, job_id)
    meta = job.return_value() if job is not None else None
    data = storage.get_defocus_map(job_id)
    if not isinstance(meta, dict) or data is None:
        raise ApiError(ErrorCode.JOB_EXPIRED, f"the defocus map of job {job_id} has expired")
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    headers = _result_headers(etag, f"{meta['filename'].removesuffix('-deblurred')}-defocus.png")
    headers[SCALE_HEADER] = str(PX_PER_LEVEL)
    if if_none_match is not None and etag in [tag.strip() for tag in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type="image/png", headers=headers)
