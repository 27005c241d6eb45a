"""/jobs/{id} without a worker: status, long-poll, result before it exists, cancel, expiry."""

from __future__ import annotations

import time

import redis
from rq.worker import SimpleWorker
from starlette.testclient import TestClient

from service.errors import ErrorCode
from service.storage import input_key
from tests import sample_images
from tests.http.clients import MakeClient


def submit(client: TestClient) -> str:
    response = client.post("/deblur", files={"file": ("a.png", sample_images.png_rgb())})
    assert response.status_code == 202
    return str(response.json()["id"])


def test_queued_job_view(client: TestClient) -> None:
    first, second = submit(client), submit(client)
    view = client.get(f"/jobs/{second}").json()
    assert view["status"] == "queued"
    assert view["queue_position"] == 1
    assert view["progress"] == {"done": 0, "total": 0}
    assert view["timings"]["started_at"] is None
    assert view["error"] is None
    assert view["result_url"] is None
    assert client.get(f"/jobs/{first}").json()["queue_position"] == 0


def test_unknown_and_malformed_ids_are_404(client: TestClient) -> None:
    for job_id in ["0" * 32, "not-a-job", "ABCDEF"]:
        response = client.get(f"/jobs/{job_id}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "job_not_found"
    assert client.get(f"/jobs/{'0' * 32}/result").status_code == 404
    assert client.delete(f"/jobs/{'0' * 32}").status_code == 404
    assert client.get("/nowhere").json()["error"]["code"] == "not_found"


def test_long_poll_waits_then_answers_unchanged(make_client: MakeClient) -> None:
    client = make_client(max_wait_s=1)
    job_id = submit(client)
    start = time.monotonic()
    response = client.get(f"/jobs/{job_id}", params={"wait": 0.6})
    assert response.status_code == 200
    assert 0.5 <= time.monotonic() - start < 5
    assert response.json()["status"] == "queued"
    start = time.monotonic()
    too_long = client.get(f"/jobs/{job_id}", params={"wait": 31})  # cut to max_wait_s
    assert too_long.status_code == 200
    assert 0.9 <= time.monotonic() - start < 5


def test_result_before_it_exists_is_409_with_retry_after(client: TestClient) -> None:
    job_id = submit(client)
    response = client.get(f"/jobs/{job_id}/result")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "result_not_ready"
    assert response.headers["retry-after"] == "1"


def test_cancel_a_queued_job(client: TestClient, redis_client: redis.Redis) -> None:
    job_id = submit(client)
    response = client.delete(f"/jobs/{job_id}")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    assert redis_client.get(input_key(job_id)) is None
    assert client.get(f"/jobs/{job_id}").json()["status"] == "canceled"
    again = client.delete(f"/jobs/{job_id}")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "job_finished"
    result = client.get(f"/jobs/{job_id}/result")
    assert result.status_code == 409
    assert result.json()["error"]["code"] == "job_not_succeeded"


def test_expired_job_reads_expired_and_its_result_410(
    client: TestClient, redis_client: redis.Redis
) -> None:
    job_id = submit(client)
    redis_client.delete(f"rq:job:{job_id}")  # what RQ's TTL does after result_ttl_s
    view = client.get(f"/jobs/{job_id}").json()
    assert view["status"] == "expired"
    assert view["timings"] is None
    result = client.get(f"/jobs/{job_id}/result")
    assert result.status_code == 410
    assert result.json()["error"]["code"] == "job_expired"
    assert client.delete(f"/jobs/{job_id}").status_code == 410


def test_health_and_readiness(client: TestClient, redis_client: redis.Redis) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["error"]["code"] == "not_ready"
    worker = SimpleWorker(["deblur"], connection=redis_client)
    worker.register_birth()
    try:
        assert client.get("/readyz").json() == {"redis": True, "workers_ready": 1}
    finally:
        worker.register_death()


def test_openapi_documents_every_error_code(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    text = str(schema["paths"])
    for code in ErrorCode:
        if code not in (ErrorCode.NOT_FOUND, ErrorCode.INTERNAL_ERROR):
            assert f"`{code.value}`" in text, code
    deblur = schema["paths"]["/deblur"]["post"]["responses"]
    assert {"202", "400", "401", "403", "413", "415", "422", "429", "503"} <= set(deblur)
    assert "Retry-After" in deblur["429"]["headers"]
    result = schema["paths"]["/jobs/{job_id}/result"]["get"]["responses"]
    assert "image/png" in result["200"]["content"]
    assert {"304", "404", "409", "410"} <= set(result)
