"""The API's error vocabulary: every code a client can get, its HTTP status, and the handlers.

Every error leaves the gateway as JSON `{"error": {"code": ..., "message": ...}}` with the
status below; 429 and 503 carry `Retry-After`. Routes raise `ApiError`; FastAPI's own
validation errors, the body-size limit and lost Redis connections are translated here so
nothing reaches a client in another shape.
"""

from __future__ import annotations

from collections import defaultdict
from enum import StrEnum
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.schemas import ErrorResponse


class ErrorCode(StrEnum):
    """Machine-readable error codes; the HTTP status of each is in `STATUS`."""

    INVALID_IMAGE = "invalid_image"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    JOB_NOT_FOUND = "job_not_found"
    NOT_FOUND = "not_found"
    RESULT_NOT_READY = "result_not_ready"
    JOB_NOT_SUCCEEDED = "job_not_succeeded"
    JOB_FINISHED = "job_finished"
    JOB_EXPIRED = "job_expired"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    TOO_MANY_PIXELS = "too_many_pixels"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNSUPPORTED_BIT_DEPTH = "unsupported_bit_depth"
    INVALID_OPTIONS = "invalid_options"
    IDEMPOTENCY_KEY_MISMATCH = "idempotency_key_mismatch"
    IDEMPOTENCY_KEY_IN_USE = "idempotency_key_in_use"
    QUEUE_FULL = "queue_full"
    REDIS_UNAVAILABLE = "redis_unavailable"
    NOT_READY = "not_ready"
    INTERNAL_ERROR = "internal_error"


STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_IMAGE: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.JOB_NOT_FOUND: 404,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.RESULT_NOT_READY: 409,
    ErrorCode.JOB_NOT_SUCCEEDED: 409,
    ErrorCode.JOB_FINISHED: 409,
    ErrorCode.JOB_EXPIRED: 410,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.TOO_MANY_PIXELS: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.UNSUPPORTED_BIT_DEPTH: 415,
    ErrorCode.INVALID_OPTIONS: 422,
    ErrorCode.IDEMPOTENCY_KEY_MISMATCH: 422,
    ErrorCode.IDEMPOTENCY_KEY_IN_USE: 409,
    ErrorCode.QUEUE_FULL: 429,
    ErrorCode.REDIS_UNAVAILABLE: 503,
    ErrorCode.NOT_READY: 503,
    ErrorCode.INTERNAL_ERROR: 500,
}

# What each code means, for the OpenAPI description of each status.
MEANING: dict[ErrorCode, str] = {
    ErrorCode.INVALID_IMAGE: "the upload is not a decodable image (corrupt or truncated)",
    ErrorCode.UNAUTHORIZED: "API keys are configured and the request carries none",
    ErrorCode.FORBIDDEN: "the API key is not one of the configured keys",
    ErrorCode.JOB_NOT_FOUND: "no job with this id was ever created here",
    ErrorCode.NOT_FOUND: "no such route",
    ErrorCode.RESULT_NOT_READY: "the job is queued or running; poll GET /jobs/{id}",
    ErrorCode.JOB_NOT_SUCCEEDED: "the job failed or was canceled; GET /jobs/{id} says why",
    ErrorCode.JOB_FINISHED: "the job already finished and can no longer be canceled",
    ErrorCode.JOB_EXPIRED: "the job or its result outlived its retention time",
    ErrorCode.PAYLOAD_TOO_LARGE: "the request body is over max_upload_bytes",
    ErrorCode.TOO_MANY_PIXELS: "the image is over max_pixels (decompression bombs included)",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "not PNG, JPEG or WebP",
    ErrorCode.UNSUPPORTED_BIT_DEPTH: "16-bit colour PNG (16-bit grayscale is kept 16-bit)",
    ErrorCode.INVALID_OPTIONS: "an option or header is out of range or malformed",
    ErrorCode.IDEMPOTENCY_KEY_MISMATCH: "the Idempotency-Key was used with a different request",
    ErrorCode.IDEMPOTENCY_KEY_IN_USE: "a request with this Idempotency-Key is still in flight",
    ErrorCode.QUEUE_FULL: "the queue holds max_queue_depth jobs; retry after Retry-After",
    ErrorCode.REDIS_UNAVAILABLE: "the queue store is unreachable; retry after Retry-After",
    ErrorCode.NOT_READY: "Redis unreachable or no worker has its model loaded",
    ErrorCode.INTERNAL_ERROR: "a bug; the message says what failed",
}


class ApiError(Exception):
    """An error a route answers with: `{"error": {"code", "message"}}` and the code's status."""

    def __init__(self, code: ErrorCode, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return STATUS[self.code]


def error_response(
    code: ErrorCode, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON response for one error."""
    body = {"error": {"code": code.value, "message": message}}
    return JSONResponse(body, status_code=STATUS[code], headers=headers)


def error_responses(*codes: ErrorCode) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for these codes, grouped by status."""
    by_status: dict[int, list[ErrorCode]] = defaultdict(list)
    for code in codes:
        by_status[STATUS[code]].append(code)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, group in sorted(by_status.items()):
        description = "; ".join(f"`{code.value}`: {MEANING[code]}" for code in group)
        entry: dict[str, Any] = {"model": ErrorResponse, "description": description}
        if status in (409, 429, 503):
            entry["headers"] = {
                "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
            }
        responses[status] = entry
    return responses


def install_error_handlers(app: FastAPI, retry_after_s: int) -> None:
    """Route every failure through the JSON error shape."""

    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.code, exc.message, exc.headers)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return error_response(ErrorCode.INVALID_OPTIONS, "; ".join(problems) or "invalid request")

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 413:
            return error_response(ErrorCode.PAYLOAD_TOO_LARGE, str(exc.detail))
        if exc.status_code == 404:
            return error_response(ErrorCode.NOT_FOUND, "no such route")
        body = {"error": {"code": f"http_{exc.status_code}", "message": str(exc.detail)}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def on_redis_down(_: Request, exc: Exception) -> JSONResponse:
        return error_response(
            ErrorCode.REDIS_UNAVAILABLE,
            f"the job store is unreachable ({type(exc).__name__}); retry later",
            {"Retry-After": str(retry_after_s)},
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(redis.ConnectionError, on_redis_down)
    app.add_exception_handler(redis.TimeoutError, on_redis_down)
