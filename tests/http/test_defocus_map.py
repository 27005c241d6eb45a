"""`GET /jobs/{id}/defocus-map` and the blur in `GET /jobs/{id}`, without torch.

An in-process RQ `SimpleWorker` runs the jobs with a stand-in for `worker.tasks` that does what
the real task does when it ends (result and map bytes beside the job, the summary in its meta):
the gateway's side of the contract, on a real Redis. tests/integration runs the real worker.
"""

from __future__ import annotations

import io
import sys
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis
from PIL import Image
from rq import get_current_job
from rq.serializers import JSONSerializer
from rq.worker import SimpleWorker
from starlette.testclient import TestClient

from service.config import Settings
from service.defocus_map import (
    MAP_STEP_PX,
    SCALE_HEADER,
    decode_defocus_map,
    encode_defocus_map,
    summarize,
)
from service.jobs import make_queue
from service.storage import Storage, defocus_map_key
from tests import sample_images
from tests.http.clients import MakeClient

RESULT_TTL_S = 120
# what the stand-in worker estimates: a left-to-right ramp of radii
RADIUS = np.tile(np.linspace(0, 6, 40, dtype=np.float32), (30, 1))


def finish(payload: dict[str, Any], *, with_map: bool) -> dict[str, Any]:
    """The end of `worker.tasks.deblur`: result (and map) stored, summary in the meta."""
    job = get_current_job()
    assert job is not None
    storage = Storage(job.connection)
    storage.put_result(job.id, sample_images.png_rgb(), RESULT_TTL_S)
    if with_map:
        storage.put_defocus_map(job.id, encode_defocus_map(RADIUS), RESULT_TTL_S)
        job.meta["blur"] = summarize(RADIUS).model_dump()
        job.save_meta()
    return {"format": "png", "sha256": "0" * 64, "bytes": 1, "filename": "a-deblurred"}


@pytest.fixture
def stand_in_tasks(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.SimpleNamespace]:
    """`worker.tasks` as RQ imports it by name; `.with_map` chooses the model's kind."""
    module = types.ModuleType("worker.tasks")
    state = types.SimpleNamespace(with_map=True)
    module.deblur = lambda payload: finish(payload, with_map=state.with_map)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "worker.tasks", module)
    return state


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    return make_client(result_ttl_s=RESULT_TTL_S)


def submit(client: TestClient) -> str:
    response = client.post("/deblur", files={"file": ("a.png", sample_images.png_rgb())})
    assert response.status_code == 202
    return str(response.json()["id"])


def run_jobs(redis_client: redis.Redis, redis_url: str) -> None:
    queue = make_queue(redis_client, Settings(redis_url=redis_url))
    worker = SimpleWorker([queue], connection=redis_client, serializer=JSONSerializer)
    worker.work(burst=True, logging_level="WARNING")


def test_succeeded_job_reports_blur_and_serves_the_map(
    client: TestClient,
    redis_client: redis.Redis,
    redis_url: str,
    stand_in_tasks: types.SimpleNamespace,
) -> None:
    job_id = submit(client)
    before = client.get(f"/jobs/{job_id}").json()
    assert before["blur"] is None
    assert before["defocus_map_url"] is None
    run_jobs(redis_client, redis_url)
    view = client.get(f"/jobs/{job_id}").json()
    assert view["status"] == "succeeded"
    assert view["blur"] == summarize(RADIUS).model_dump()
    assert view["defocus_map_url"] == f"/jobs/{job_id}/defocus-map"

    response = client.get(view["defocus_map_url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers[SCALE_HEADER] == "0.001"
    assert response.headers["content-disposition"] == 'inline; filename="a-defocus.png"'
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (40, 30)
    np.testing.assert_allclose(
        decode_defocus_map(response.content), RADIUS, atol=MAP_STEP_PX / 2 + 1e-6
    )
    again = client.get(view["defocus_map_url"], headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    # kept as long as the result
    assert 0 < redis_client.ttl(defocus_map_key(job_id)) <= RESULT_TTL_S


def test_no_map_from_a_model_without_front_end_is_404(
    client: TestClient,
    redis_client: redis.Redis,
    redis_url: str,
    stand_in_tasks: types.SimpleNamespace,
) -> None:
    stand_in_tasks.with_map = False
    job_id = submit(client)
    run_jobs(redis_client, redis_url)
    view = client.get(f"/jobs/{job_id}").json()
    assert view["status"] == "succeeded"
    assert view["blur"] is None
    assert view["defocus_map_url"] is None
    response = client.get(f"/jobs/{job_id}/defocus-map")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_defocus_map"


def test_map_of_unfinished_unknown_canceled_and_expired_jobs(
    client: TestClient, redis_client: redis.Redis
) -> None:
    job_id = submit(client)
    queued = client.get(f"/jobs/{job_id}/defocus-map")
    assert queued.status_code == 409
    assert queued.json()["error"]["code"] == "result_not_ready"
    assert queued.headers["retry-after"] == "1"
    unknown = client.get(f"/jobs/{'0' * 32}/defocus-map")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "job_not_found"
    assert client.delete(f"/jobs/{job_id}").status_code == 200
    canceled = client.get(f"/jobs/{job_id}/defocus-map")
    assert canceled.status_code == 409
    assert canceled.json()["error"]["code"] == "job_not_succeeded"
    redis_client.delete(f"rq:job:{job_id}")
    expired = client.get(f"/jobs/{job_id}/defocus-map")
    assert expired.status_code == 410
    assert expired.json()["error"]["code"] == "job_expired"


def test_map_bytes_gone_before_the_job_is_410(
    client: TestClient,
    redis_client: redis.Redis,
    redis_url: str,
    stand_in_tasks: types.SimpleNamespace,
) -> None:
    job_id = submit(client)
    run_jobs(redis_client, redis_url)
    redis_client.delete(defocus_map_key(job_id))
    response = client.get(f"/jobs/{job_id}/defocus-map")
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "job_expired"


def test_openapi_documents_the_defocus_map(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    route = schema["paths"]["/jobs/{job_id}/defocus-map"]["get"]["responses"]
    assert "image/png" in route["200"]["content"]
    assert SCALE_HEADER in route["200"]["headers"]
    assert {"304", "404", "409", "410"} <= set(route)
    assert "`no_defocus_map`" in route["404"]["description"]
    blur = schema["components"]["schemas"]["BlurEstimate"]["properties"]
    assert {"median_radius_px", "p90_radius_px", "in_focus_fraction"} <= set(blur)
