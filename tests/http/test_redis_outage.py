"""Redis down: 503 with Retry-After, /readyz fails; the gateway recovers when Redis returns."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from service.config import Settings
from service.gateway.app import create_app
from service.redis_server import EmbeddedRedis
from tests import sample_images


@pytest.mark.integration
def test_gateway_answers_503_while_redis_is_down_and_recovers() -> None:
    server = EmbeddedRedis().start()
    try:
        settings = Settings(redis_url=server.url, redis_timeout_s=0.5, retry_after_s=3)
        with TestClient(create_app(settings)) as client:
            upload = {"file": ("a.png", sample_images.png_rgb())}
            assert client.post("/deblur", files=upload).status_code == 202
            server.stop()
            down = client.post("/deblur", files=upload)
            assert down.status_code == 503
            assert down.headers["retry-after"] == "3"
            assert down.json()["error"]["code"] == "redis_unavailable"
            assert client.get(f"/jobs/{'0' * 32}").status_code == 503
            assert client.get("/readyz").status_code == 503
            assert client.get("/healthz").status_code == 200
            metrics = client.get("/metrics")
            assert metrics.status_code == 200
            assert "swintormer_redis_up 0.0" in metrics.text
            server.start()  # same port
            assert client.post("/deblur", files=upload).status_code == 202
            assert "swintormer_redis_up 1.0" in client.get("/metrics").text
    finally:
        server.stop()
