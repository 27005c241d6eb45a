"""A request-body size limit that answers in the API's JSON error shape.

FastAPI's own `max_body_size` answers 413 in plain text whenever the request declared its
length, so clients would get two shapes of error. This pure ASGI middleware refuses a
declared oversize body before reading it, and stops a streamed (chunked) one as soon as it
passes the limit by raising a 413 that the exception handlers turn into JSON.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ErrorCode
from service.gateway.api_errors import error_response


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413 `payload_too_large`."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, on_refused: Callable[[Scope], None] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_refused = on_refused

    def _refused(self, scope: Scope) -> None:
        if self.on_refused is not None:
            self.on_refused(scope)

    def _message(self) -> str:
        return f"request body is over the limit of {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            self._refused(scope)
            response = error_response(ErrorCode.PAYLOAD_TOO_LARGE, self._message())
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    self._refused(scope)
                    # an HTTPException, as FastAPI re-raises those from body parsing
                    raise HTTPException(413, detail=self._message())
            return message

        await self.app(scope, limited_receive, send)
