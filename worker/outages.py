"""Riding out Redis outages: which errors are an outage, waiting with back-off, patient calls.

A Redis restart, a failover that leaves the worker on a read-only replica, or a full server
(`noeviction`) are outages, not bugs: the worker waits them out and carries on (the job it held
is finished or put back at the front of the queue, see `worker.rqworker`), and never exits for
one. Redis errors of other kinds (a wrong type, a script error) are bugs and propagate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import redis

log = logging.getLogger(__name__)

# A Redis that is down, restarting (LOADING is a ConnectionError), read-only or full.
REDIS_OUTAGES: tuple[type[redis.RedisError], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.ReadOnlyError,
    redis.OutOfMemoryError,
)
PROBE_KEY = "swintormer:worker-probe"
FIRST_WAIT_S = 0.5

T = TypeVar("T")


def redis_takes_writes(connection: redis.Redis) -> bool:
    """One small write with an expiry: True when Redis answers and accepts it."""
    try:
        return bool(connection.set(PROBE_KEY, b"1", ex=10))
    except REDIS_OUTAGES:
        return False


def wait_for_redis(
    connection: redis.Redis,
    max_wait_s: float,
    should_stop: Callable[[], bool] = lambda: False,
    deadline: float | None = None,
) -> bool:
    """Block until Redis takes writes again, backing off from 0.5 s to `max_wait_s`.

    Args:
        connection: the client to probe.
        max_wait_s: longest pause between two probes.
        should_stop: polled between probes; True gives up (a shutdown was asked for).
        deadline: a `time.monotonic()` value after which to give up.

    Returns:
        True once Redis takes writes, False when stopped or past the deadline first.
    """
    pause = FIRST_WAIT_S
    since = time.monotonic()
    while not redis_takes_writes(connection):
        if should_stop() or (deadline is not None and time.monotonic() >= deadline):
            return False
        log.warning(
            "Redis does not take writes (for %.0f s); next try in %.1f s",
            time.monotonic() - since,
            pause,
        )
        time.sleep(pause)
        pause = min(pause * 2, max_wait_s)
    return True


def patiently(call: Callable[[], T], connection: redis.Redis, max_wait_s: float) -> T:
    """Run a Redis call, waiting out outages and trying again until it succeeds.

    Inside a job this is bounded by the job's own time limit (RQ interrupts it).
    """
    while True:
        try:
            return call()
        except REDIS_OUTAGES as error:
            log.warning("Redis outage (%s: %s); waiting to retry", type(error).__name__, error)
            wait_for_redis(connection, max_wait_s)
