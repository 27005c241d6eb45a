"""Redis that answers but refuses writes (read-only after a failover, full under noeviction).

Every answer stays JSON in the API's error shape with Retry-After, `/readyz` reports not
ready, `/metrics` still answers; and a submission that failed part-way gives its
Idempotency-Key back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx2
import pytest
import redis
from starlette.testclient import TestClient

from service.redis_server import free_port
from service.storage import Storage, idempotency_key
from tests import sample_images
from tests.http.clients import MakeClient


def read_only(connection: redis.Redis) -> Callable[[], None]:
    """Make the server a replica of a master that does not exist: reads work, writes fail."""
    connection.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
    return lambda: connection.execute_command("REPLICAOF", "NO", "ONE")


def full(connection: redis.Redis) -> Callable[[], None]:
    """A 1-byte memory limit under noeviction: every write that may grow memory fails."""
    connection.config_set("maxmemory-policy", "noeviction")
    connection.config_set("maxmemory", 1)

    def undo() -> None:
        connection.config_set("maxmemory", 0)

    return undo


@pytest.fixture(params=[read_only, full], ids=["read-only", "full"])
def refusing_writes(
    request: pytest.FixtureRequest, redis_client: redis.Redis
) -> Iterator[Callable[[], None]]:
    """A callable that turns the session's Redis into one refusing writes, undone after."""
    undo: list[Callable[[], None]] = []

    def start() -> None:
        undo.append(request.param(redis_client))

    yield start
    for step in undo:
        step()


def assert_503(response: httpx2.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["error"]["code"] == "redis_unavailable"


def test_no_raw_500_when_redis_refuses_writes(
    client: TestClient, refusing_writes: Callable[[], None]
) -> None:
    upload = {"file": ("a.png", sample_images.png_rgb())}
    queued = client.post("/deblur", files=upload).json()["id"]
    assert client.get("/readyz").json()["error"]["code"] == "not_ready"  # no worker yet
    refusing_writes()

    assert_503(client.post("/deblur", files=upload))
    assert_503(client.post("/deblur", files=upload, headers={"Idempotency-Key": "k"}))
    assert_503(client.delete(f"/jobs/{queued}"))
    assert client.get(f"/jobs/{queued}").json()["status"] == "queued"  # reads still work
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "writes" in ready.json()["error"]["message"]
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "swintormer_redis_up 1.0" in metrics.text
    assert "swintormer_redis_writable 0.0" in metrics.text


def test_a_failed_submission_releases_its_idempotency_key(
    client: TestClient, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = {"file": ("a.png", sample_images.png_rgb())}
    headers = {"Idempotency-Key": "order-9"}

    def fail(*_: object) -> None:
        raise redis.ConnectionError("connection reset by peer")

    with monkeypatch.context() as patch:
        patch.setattr(Storage, "put_input", fail)
        assert_503(client.post("/deblur", files=upload, headers=headers))
    assert redis_client.get(idempotency_key("order-9")) is None
    retried = client.post("/deblur", files=upload, headers=headers)
    assert retried.status_code == 202, retried.text
    assert redis_client.ttl(idempotency_key("order-9")) > 3600  # confirmed for the full TTL


def test_a_refused_submission_releases_its_idempotency_key(make_client: MakeClient) -> None:
    client = make_client(max_queue_depth=1)
    upload = {"file": ("a.png", sample_images.png_rgb())}
    assert client.post("/deblur", files=upload).status_code == 202
    headers = {"Idempotency-Key": "order-10"}
    assert client.post("/deblur", files=upload, headers=headers).status_code == 429
    assert client.post("/deblur", files=upload, headers=headers).status_code == 429  # not 409
