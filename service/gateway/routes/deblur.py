"""`POST /deblur`: hand the upload to `accept_submission`, answer 202 Accepted, count outcomes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Header, Request, Response, UploadFile

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

FILE_DESCRIPTION = "PNG, JPEG, WebP, TIFF or HEIC/HEIF image, 8 or 16 bit"


async def refuse_repeated_fields(request: Request) -> None:
    """A form field sent twice is refused (422): which of two `quality`s was meant?"""
    form = await request.form()  # parsed once; FastAPI reads the same cached form
    names = [name for name, _ in form.multi_items()]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ApiError(ErrorCode.INVALID_OPTIONS, f"field(s) sent more than once: {repeated}")


router = APIRouter(tags=["deblur"], dependencies=[ApiKeyDep, Depends(refuse_repeated_fields)])


def use_form_schema(openapi: dict[str, Any]) -> None:
    """Put `form_schema()` in place of FastAPI's schema of the `POST /deblur` body."""
    body = openapi["paths"]["/deblur"]["post"]["requestBody"]["content"]["multipart/form-data"]
    name = body["schema"]["$ref"].rsplit("/", 1)[-1]
    openapi["components"]["schemas"][name] = form_schema()


def form_schema() -> dict[str, Any]:
    """The multipart body as OpenAPI should state it: `file` plus each option, nothing else.

    FastAPI's own is `allOf: [DeblurOptions]` (which forbids extra properties) plus `file`, a
    schema no request satisfies, and it offers `null` for options a form cannot send as null.
    """
    options = DeblurOptions.model_json_schema()
    definitions = options.get("$defs", {})
    properties: dict[str, Any] = {
        "file": {
            "type": "string",
            "format": "binary",
            "description": FILE_DESCRIPTION,
        }
    }
    for name, field in options["properties"].items():
        field = dict(field)
        for variant in field.pop("anyOf", []):
            if variant.get("type") != "null":
                field.update(variant)
        if "$ref" in field:
            field.update(definitions[field.pop("$ref").rsplit("/", 1)[-1]])
        properties[name] = field
    properties["tile_overlap_px"]["multipleOf"] = 2
    return {
        "type": "object",
        "properties": properties,
        "required": ["file"],
        "additionalProperties": False,
    }


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
            ErrorCode.MALFORMED_REQUEST,
            ErrorCode.HEADERS_TOO_LARGE,
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
    file: Annotated[UploadFile, File(description=FILE_DESCRIPTION)],
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
