"""How every error leaves the gateway: `ApiError`, the JSON error body and the handlers.

Every error leaves the gateway as JSON `{"error": {"code": ..., "message": ...}}` with the
status of its code (`service.errors.STATUS`); 429 and 503 carry `Retry-After`. Routes raise
`ApiError`; FastAPI's own validation errors, the body-size limit and every Redis failure (lost
connection, timeout, a read-only replica after a failover, a full `noeviction` server) are
translated here, and anything unexpected becomes a JSON 500, so nothing reaches a client in
another shape.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from service.errors import MEANING, STATUS, ErrorCode
from service.schemas import ErrorResponse

log = logging.getLogger(__name__)


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
            message = str(error.get("msg", "invalid"))
            if error.get("type") == "value_error":  # pydantic prefixes our own messages
                message = message.removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        return error_response(ErrorCode.INVALID_OPTIONS, "; ".join(problems) or "invalid request")

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 413:
            return error_response(ErrorCode.PAYLOAD_TOO_LARGE, str(exc.detail))
        if exc.status_code == 404:
            return error_response(ErrorCode.NOT_FOUND, "no such route")
        if exc.status_code == 405:
            allowed = ", ".join(allowed_methods(request))
            return error_response(
                ErrorCode.METHOD_NOT_ALLOWED,
                f"{request.method} is not allowed here; allowed: {allowed}",
                {"Allow": allowed},
            )
        if exc.status_code == 400:
            return error_response(ErrorCode.MALFORMED_REQUEST, str(exc.detail))
        log.warning("HTTP %d without an API error code: %s", exc.status_code, exc.detail)
        return error_response(ErrorCode.INTERNAL_ERROR, str(exc.detail))

    async def on_redis_error(_: Request, exc: Exception) -> JSONResponse:
        return error_response(
            ErrorCode.REDIS_UNAVAILABLE,
            f"{redis_problem(exc)} ({type(exc).__name__}); retry later",
            {"Retry-After": str(retry_after_s)},
        )

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(ErrorCode.INTERNAL_ERROR, f"internal error ({type(exc).__name__})")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(redis.RedisError, on_redis_error)
    app.add_exception_handler(Exception, on_unexpected)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path (routes split by method list only theirs)."""
    routes = request.app.router.routes
    return [
        method
        for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


def redis_problem(exc: BaseException) -> str:
    """What a Redis error means for the service, in words a client can act on."""
    if isinstance(exc, redis.ReadOnlyError):
        return "the job store is read-only (a failover is in progress)"
    if isinstance(exc, redis.OutOfMemoryError):
        return "the job store is full"
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return "the job store is unreachable"
    return "the job store refused the request"
