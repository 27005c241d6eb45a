"""`/healthz` (the process answers) and `/readyz` (Redis reachable, a warm worker listening)."""

from __future__ import annotations

import redis
from fastapi import APIRouter

from service.errors import ErrorCode
from service.gateway.api_errors import ApiError, error_responses
from service.gateway.deps import QueueDep, RedisDep
from service.jobs import ready_workers
from service.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process is up")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: Redis reachable and at least one worker with its model loaded",
    responses=error_responses(ErrorCode.NOT_READY),
)
def readyz(connection: RedisDep, queue: QueueDep) -> Readiness:
    try:
        connection.ping()
        workers = ready_workers(queue)
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise ApiError(ErrorCode.NOT_READY, f"Redis is unreachable: {error}") from error
    if workers == 0:
        raise ApiError(ErrorCode.NOT_READY, "no worker with a loaded model is listening")
    return Readiness(redis=True, workers_ready=workers)
