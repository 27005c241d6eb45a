"""`python -m worker`: load the model once, warm it up, then take deblur jobs from RQ.

Run one per GPU (`SWINTORMER_DEVICE=cuda:N`, or `SWINTORMER_WORKER_INDEX=i` with the device
`auto` or `cuda`: GPU i mod the count, as `swintormer serve --workers N` does). SIGTERM or
Ctrl-C is a warm shutdown: the current job finishes, then the process exits; a second signal
stops at once.
"""

from __future__ import annotations

import argparse
import logging
import sys

from service.config import Settings
from worker.checkpoints import CheckpointMissingError, resolve_checkpoint

log = logging.getLogger("worker")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--burst", action="store_true", help="quit when the queue is empty")
    parser.add_argument("--name", default=None, help="worker name (default: random)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    if settings.redis_url is None:
        log.error("set SWINTORMER_REDIS_URL (e.g. redis://localhost:6379/0)")
        return 2
    try:
        resolve_checkpoint(settings)
    except CheckpointMissingError as error:
        log.error("%s", error)
        return 2
    return work(settings, args)


def work(settings: Settings, args: argparse.Namespace) -> int:
    """Load and warm the model, register with RQ, take jobs until stopped (or idle in burst)."""
    # imported here: torch takes seconds to import, a missing checkpoint should not wait for it
    import redis
    from rq.serializers import JSONSerializer

    from service.storage import Storage
    from service.uploads import configure_pillow
    from worker import metrics
    from worker.outages import wait_for_redis
    from worker.rqworker import DeblurWorker, idle_worker_ttl
    from worker.runtime import Runtime
    from worker.tasks import WorkerContext, bind

    assert settings.redis_url is not None
    configure_pillow(settings.max_pixels)
    runtime = Runtime(settings)
    try:
        runtime.setup()
    except ValueError as error:  # e.g. SWINTORMER_DEVICE names no usable device
        log.error("%s", error)
        return 2
    metrics.MODEL_LOAD.set(runtime.load_s)
    # the file's name only: a metrics page must not map the host's file system
    checkpoint_name = runtime.checkpoint.name if runtime.checkpoint else ""
    metrics.MODEL_INFO.info(
        {
            "checkpoint": checkpoint_name,
            "device": str(runtime.device),
            "precision": runtime.precision,  # the one that runs (CPU: SWINTORMER_CPU_PRECISION)
        }
    )
    try:
        metrics.serve(settings.worker_metrics_port, runtime.device, settings.worker_metrics_host)
    except OSError as error:
        log.error(
            "cannot serve metrics on %s:%d (%s); set SWINTORMER_WORKER_METRICS_PORT (0: off)",
            settings.worker_metrics_host,
            settings.worker_metrics_port,
            error,
        )
        return 2
    metrics.WARMUP.set(runtime.warmup())
    metrics.TILE_BATCH.set(runtime.tile_batch(settings.tile_px))

    connection = redis.Redis.from_url(settings.redis_url)
    wait_for_redis(connection, settings.redis_retry_max_s)
    Storage(connection).put_model_limits(settings.queue_name, runtime.limits())
    bind(WorkerContext(runtime=runtime, settings=settings, storage=Storage(connection)))
    worker = DeblurWorker(
        [settings.queue_name],
        name=args.name,
        connection=connection,
        serializer=JSONSerializer,
        maintenance_interval=settings.worker_maintenance_interval_s,
        worker_ttl=idle_worker_ttl(settings.abandoned_grace_s),
    )
    worker.abandoned_grace_s = settings.abandoned_grace_s
    worker.heartbeat_s = settings.worker_heartbeat_s
    worker.redis_retry_max_s = settings.redis_retry_max_s
    metrics.MODEL_READY.set(1)
    try:
        worker.work(burst=args.burst, logging_level=settings.log_level)
    finally:
        metrics.MODEL_READY.set(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
