"""FastAPI dependencies as `Annotated` aliases: settings, Redis, queue, storage, API key."""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

import redis
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from rq import Queue

from service.config import Settings
from service.errors import ErrorCode
from service.gateway.api_errors import ApiError
from service.gateway.decode_budget import DecodeBudget
from service.gateway.metrics import GatewayMetrics
from service.storage import Storage


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_redis(request: Request) -> redis.Redis:
    connection: redis.Redis = request.app.state.redis
    return connection


def get_queue(request: Request) -> Queue:
    queue: Queue = request.app.state.queue
    return queue


def get_metrics(request: Request) -> GatewayMetrics:
    metrics: GatewayMetrics = request.app.state.metrics
    return metrics


def get_storage(request: Request) -> Storage:
    return Storage(get_redis(request))


def get_decode_budget(request: Request) -> DecodeBudget:
    budget: DecodeBudget = request.app.state.decode_budget
    return budget


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
QueueDep = Annotated[Queue, Depends(get_queue)]
StorageDep = Annotated[Storage, Depends(get_storage)]
MetricsDep = Annotated[GatewayMetrics, Depends(get_metrics)]
DecodeBudgetDep = Annotated[DecodeBudget, Depends(get_decode_budget)]

_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="required when the server has API keys set"
)


def key_id(api_key: str) -> str:
    """What jobs record as their owner: a digest of the key, never the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:24]


def require_api_key(
    settings: SettingsDep, api_key: Annotated[str | None, Security(_api_key_header)]
) -> str:
    """Accept the request when no keys are configured or `X-API-Key` is one of them.

    Every configured key is compared (in constant time), so the time taken does not tell
    which key, or how much of one, matched.

    Returns:
        The tenant: the key's id (`key_id`), or "" when the server has no API keys. Jobs and
        Idempotency-Keys belong to the tenant that made them.
    """
    if not settings.api_keys:
        return ""
    if not api_key:
        raise ApiError(ErrorCode.UNAUTHORIZED, "this server needs an X-API-Key header")
    offered = api_key.encode()
    matches = [
        hmac.compare_digest(offered, key.get_secret_value().encode()) for key in settings.api_keys
    ]
    if not any(matches):
        raise ApiError(ErrorCode.FORBIDDEN, "the API key is not valid")
    return key_id(api_key)


ApiKeyDep = Depends(require_api_key)
TenantDep = Annotated[str, Depends(require_api_key)]
