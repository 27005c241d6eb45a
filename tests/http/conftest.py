"""The gateway built by `create_app` on the session's private Redis, driven over HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from service.app import create_app
from service.config import Settings
from tests.http.clients import MakeClient


@pytest.fixture
def make_client(redis_url: str) -> Iterator[MakeClient]:
    """Build a client for a gateway with these settings overrides (on the private Redis)."""
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        fields: dict[str, object] = {"redis_url": redis_url, "max_pixels": 1_000_000}
        fields.update(overrides)
        client = TestClient(create_app(Settings(**fields)))  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client()
