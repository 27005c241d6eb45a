"""`POST /deblur`: hand the upload to `accept_submission`, answer 202 Accepted, count outcomes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Response, UploadFile

from service.errors import ErrorCode
from service.gateway.api_errors import ApiError, error_responses
from service.gateway.deps import (
    ApiKeyDep,
    DecodeBudgetDep,
    MetricsDep,
    QueueDep,
    SettingsDep,
    StorageDep,
    TenantDep,
)
from service.gateway.submission import Submission, accept_submission
from service.schemas import DeblurOptions, JobAccepted

router = APIRouter(tags=["deblur"], dependencies=[ApiKeyDep])


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
            ErrorCode.SERVER_BUSY,
        ),
    },
)
def submit(
    response: Response,
    settings: SettingsDep,
    metrics: MetricsDep,
    queue: QueueDep,
    storage: StorageDep,
    tenant: TenantDep,
    budget: DecodeBudgetDep,
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
    submission = Submission(data, file.filename, options, idempotency_key, tenant)
    try:
        receipt = accept_submission(submission, settings, queue, storage, budget)
    except ApiError as error:
        metrics.submissions.labels(_OUTCOMES.get(error.code, "invalid")).inc()
        raise
    metrics.submissions.labels("accepted" if receipt.is_new else "duplicate").inc()
    response.headers["Location"] = receipt.accepted.status_url
    return receipt.accepted


_OUTCOMES = {
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "unsupported",
    ErrorCode.UNSUPPORTED_BIT_DEPTH: "unsupported",
    ErrorCode.TOO_MANY_PIXELS: "too_large",
    ErrorCode.PAYLOAD_TOO_LARGE: "too_large",
    ErrorCode.QUEUE_FULL: "queue_full",
}
