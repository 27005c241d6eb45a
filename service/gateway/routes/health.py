"""`/healthz` (the process answers) and `/readyz` (Redis takes writes, a warm worker listening)."""

from __future__ import annotations

import redis
from fastapi import APIRouter

from service.errors import ErrorCode
from service.gateway.api_errors import ApiError, error_responses
from service.gateway.deps import QueueDep, RedisDep, SettingsDep
from service.jobs import ready_workers, redis_writable
from service.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process is up")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: Redis takes writes and at least one live worker has its model loaded",
    responses=error_responses(ErrorCode.NOT_READY),
)
def readyz(connection: RedisDep, queue: QueueDep, settings: SettingsDep) -> Readiness:
    try:
        writable = redis_writable(connection)
        workers = ready_workers(queue, settings.abandoned_grace_s)
    except redis.RedisError as error:
        raise ApiError(ErrorCode.NOT_READY, f"Redis is unreachable: {error}") from error
    if not writable:
        raise ApiError(ErrorCode.NOT_READY, "Redis does not take writes (read-only or full)")
    if workers == 0:
        raise ApiError(ErrorCode.NOT_READY, "no live worker with a loaded model is listening")
    return Readiness(redis=True, workers_ready=workers)
