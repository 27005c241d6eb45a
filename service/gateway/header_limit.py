"""A limit on the size of a request's headers, answered in the API's JSON error shape.

Uvicorn bounds a single incomplete HTTP event, not the headers a request may carry in all;
every header is read into memory and parsed (the API key, Idempotency-Key, multipart
boundaries). Requests whose header names and values add up to more than `max_bytes` get 431
`headers_too_large` before any route runs.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ErrorCode
from service.gateway.api_errors import error_response


class HeaderLimitMiddleware:
    """Refuse requests whose headers total more than `max_bytes` with 431."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > self.max_bytes:
                response = error_response(
                    ErrorCode.HEADERS_TOO_LARGE,
                    f"request headers are {size} bytes, over the limit of {self.max_bytes}",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
