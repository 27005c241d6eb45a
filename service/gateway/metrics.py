"""Every Prometheus metric the gateway exports at `/metrics`, defined in one place.

Names carry the `swintormer_` prefix and base units. Request metrics are updated as
requests are served; queue and worker gauges are read from Redis at scrape time by
`QueueCollector`, which first reaps jobs abandoned by dead workers (RQ's SimpleWorker sends
no heartbeat mid-job; see worker/rqworker.py), so a regular scrape is what keeps such jobs
moving. Each app has its own registry (tests build many apps in one process).
Reference: docs/metrics.md.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Iterator

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from rq import Queue
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    StartedJobRegistry,
)
from rq.worker import Worker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.jobs import reap_abandoned, redis_writable

log = logging.getLogger(__name__)

# Seconds: long-polls last up to 30 s and a slow upload longer, so the buckets reach minutes.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# Bytes: 16 KiB .. 64 MiB in powers of 4.
UPLOAD_BUCKETS_BYTES = tuple(float(16 * 1024 * 4**power) for power in range(7))
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SUBMISSION_OUTCOMES = (
    "accepted",
    "duplicate",
    "invalid",
    "unsupported",
    "too_large",
    "queue_full",
)


class GatewayMetrics:
    """The gateway's metric objects on their own registry."""

    def __init__(self, queue: Queue, abandoned_grace_s: float) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "swintormer_http_request_duration_seconds",
            "HTTP request latency, by route template, method and status code",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.upload_size = Histogram(
            "swintormer_upload_size_bytes",
            "Size of the uploaded image files (POST /deblur) that reached validation",
            buckets=UPLOAD_BUCKETS_BYTES,
            registry=self.registry,
        )
        self.submissions = Counter(
            "swintormer_jobs_submitted",
            "POST /deblur outcomes: accepted, duplicate (Idempotency-Key replay), invalid,"
            " unsupported, too_large, queue_full",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in SUBMISSION_OUTCOMES:
            self.submissions.labels(outcome)
        self.registry.register(QueueCollector(queue, abandoned_grace_s))


class QueueCollector(Collector):
    """Queue depth by state and workers by state, read from Redis at each scrape."""

    def __init__(self, queue: Queue, abandoned_grace_s: float) -> None:
        self.queue = queue
        self.abandoned_grace_s = abandoned_grace_s

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("swintormer_redis_up", "1 if Redis answered this scrape, else 0")
        writable = GaugeMetricFamily(
            "swintormer_redis_writable",
            "1 if Redis took a write this scrape, else 0 (read-only replica, full, or down)",
        )
        try:
            is_writable = redis_writable(self.queue.connection)
            if is_writable:
                reap_abandoned(self.queue, self.abandoned_grace_s)
            jobs = self._jobs_by_state()
            workers = self._workers_by_state()
        except redis.RedisError as error:
            # /metrics always answers: a scrape is how an operator sees that Redis is in trouble
            log.warning("metrics: Redis failed: %s", error)
            up.add_metric([], 0)
            writable.add_metric([], 0)
            yield up
            yield writable
            return
        up.add_metric([], 1)
        writable.add_metric([], 1 if is_writable else 0)
        yield up
        yield writable
        jobs_family = GaugeMetricFamily(
            "swintormer_queue_jobs",
            "Jobs in the queue and its registries, by state",
            labels=["state"],
        )
        for state, count in jobs.items():
            jobs_family.add_metric([state], count)
        yield jobs_family
        workers_family = GaugeMetricFamily(
            "swintormer_workers", "Registered workers on the queue, by state", labels=["state"]
        )
        for state, count in workers.items():
            workers_family.add_metric([state], count)
        yield workers_family

    def _jobs_by_state(self) -> dict[str, int]:
        queue = self.queue
        registries = {
            "started": StartedJobRegistry(queue=queue),
            "finished": FinishedJobRegistry(queue=queue),
            "failed": FailedJobRegistry(queue=queue),
            "deferred": DeferredJobRegistry(queue=queue),
            "canceled": CanceledJobRegistry(queue=queue),
        }
        counts = {"queued": queue.count}
        # ZCARD, not `registry.count`: that also cleans the registry, a write a read-only or
        # full Redis refuses (reaping is done above, when Redis takes writes)
        connection = queue.connection
        counts.update({state: int(connection.zcard(r.key)) for state, r in registries.items()})
        return counts

    def _workers_by_state(self) -> dict[str, int]:
        states = Tally(
            str(worker.get_state())
            for worker in Worker.all(connection=self.queue.connection, queue=self.queue)
        )
        counts = {"idle": 0, "busy": 0}
        counts.update(states)
        return counts


class RequestMetricsMiddleware:
    """Observe each HTTP request's latency under its route template (not its raw path)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            # a client chooses the method: any name outside HTTP's own would be a new series
            method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
            self.metrics.requests.labels(template, method, str(status)).observe(
                time.perf_counter() - start
            )
