"""`create_app(settings)`: the gateway's FastAPI application.

Uvicorn runs `create_app` as a factory (`swintormer serve` does); tests call it with their
own `Settings` pointing at a private Redis.
"""

from __future__ import annotations

from typing import Any

import redis
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import Scope

from service.config import Settings
from service.gateway.api_errors import install_error_handlers
from service.gateway.body_limit import BodyLimitMiddleware
from service.gateway.decode_budget import DecodeBudget
from service.gateway.header_limit import HeaderLimitMiddleware
from service.gateway.metrics import GatewayMetrics, RequestMetricsMiddleware
from service.gateway.routes import client_settings, deblur, health, jobs, web_page
from service.gateway.routes import metrics as metrics_route
from service.jobs import make_queue
from service.uploads import configure_pillow
from swintormer import __version__


def connect_redis(settings: Settings, url: str) -> redis.Redis:
    """A client with short timeouts: a lost Redis answers 503 fast, and reconnects by itself."""
    return redis.Redis.from_url(
        url,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=10,
    )


def create_app(settings: Settings) -> FastAPI:
    """Build the gateway for `settings` (which must name a Redis URL)."""
    if settings.redis_url is None:
        raise ValueError("the gateway needs settings.redis_url (swintormer serve sets one)")
    configure_pillow(settings.max_pixels)
    app = FastAPI(
        title="Swintormer Serve",
        version=__version__,
        summary="Image deblurring as a job API: upload, poll, download.",
    )
    app.state.settings = settings
    app.state.redis = connect_redis(settings, settings.redis_url)
    app.state.queue = make_queue(app.state.redis, settings)
    app.state.decode_budget = DecodeBudget(settings.decode_pixel_budget)
    install_error_handlers(app, settings.retry_after_s)
    metrics = GatewayMetrics(app.state.queue, settings.abandoned_grace_s)
    app.state.metrics = metrics

    def count_refused_upload(scope: Scope) -> None:
        if scope.get("path") == "/deblur":
            metrics.submissions.labels("too_large").inc()

    app.add_middleware(
        BodyLimitMiddleware, max_bytes=settings.max_upload_bytes, on_refused=count_refused_upload
    )
    app.add_middleware(HeaderLimitMiddleware, max_bytes=settings.max_header_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "DELETE"],
            allow_headers=["X-API-Key", "Idempotency-Key"],
            expose_headers=["Location", "Retry-After", "ETag"],
        )
    app.include_router(deblur.router)
    app.include_router(jobs.router)
    app.include_router(health.router)
    app.include_router(metrics_route.router)
    app.include_router(client_settings.router)
    if settings.web_page:
        app.include_router(web_page.router)
    # added last: outermost, so it times every response, refusals included
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            deblur.use_form_schema(default_openapi())
        return app.openapi_schema or default_openapi()

    app.openapi = openapi  # type: ignore[method-assign]
    return app
