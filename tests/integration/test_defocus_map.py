"""The estimated blur through the real pipeline: a `python -m worker` holding `tiny-defocus`."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import redis
from PIL import Image
from starlette.testclient import TestClient

from service.defocus_map import MAP_STEP_PX, SCALE_HEADER, decode_defocus_map, summarize
from service.storage import defocus_map_key
from tests import sample_images
from tests.defocus_restorer import save_tiny_defocus_restorer
from tests.integration.processes import SERVICE_ENV, StartWorker, finish_burst

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def defocus_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "tiny-defocus.safetensors"
    return save_tiny_defocus_restorer(path)


def submit(client: TestClient, data: bytes) -> str:
    response = client.post("/deblur", files={"file": ("photo.png", data)})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_worker_with_front_end_stores_the_map_and_reports_the_blur(
    gateway: TestClient,
    start_worker: StartWorker,
    defocus_checkpoint: Path,
    redis_client: redis.Redis,
) -> None:
    job_id = submit(gateway, sample_images.png_rgb(150, 110))
    finish_burst(start_worker("--burst", SWINTORMER_CHECKPOINT=str(defocus_checkpoint)))
    view = gateway.get(f"/jobs/{job_id}").json()
    assert view["status"] == "succeeded", view
    blur = view["blur"]
    assert blur is not None
    assert 0 <= blur["median_radius_px"] <= blur["p90_radius_px"] <= blur["max_radius_px"]
    assert 0 <= blur["in_focus_fraction"] <= 1

    response = gateway.get(view["defocus_map_url"])
    assert response.status_code == 200
    assert response.headers[SCALE_HEADER] == "0.001"
    assert response.headers["content-disposition"] == 'inline; filename="photo-defocus.png"'
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (150, 110)  # the result's size, several 64 px tiles stitched
    radius = decode_defocus_map(response.content)
    assert np.isfinite(radius).all()
    assert radius.min() >= 0
    # the status summarises the map before the PNG rounds it to 0.01 px (and the status to 0.001)
    tolerance = MAP_STEP_PX / 2 + 1e-3
    assert summarize(radius).median_radius_px == pytest.approx(
        blur["median_radius_px"], abs=tolerance
    )
    assert summarize(radius).p90_radius_px == pytest.approx(blur["p90_radius_px"], abs=tolerance)
    ttl_s = int(SERVICE_ENV.get("SWINTORMER_RESULT_TTL_S", 3600))
    assert 0 < redis_client.ttl(defocus_map_key(job_id)) <= ttl_s
    assert gateway.get(view["result_url"]).status_code == 200


def test_worker_without_front_end_reports_no_blur(
    gateway: TestClient, start_worker: StartWorker
) -> None:
    job_id = submit(gateway, sample_images.png_rgb())
    finish_burst(start_worker("--burst"))
    view = gateway.get(f"/jobs/{job_id}").json()
    assert view["status"] == "succeeded", view
    assert view["blur"] is None
    assert view["defocus_map_url"] is None
    response = gateway.get(f"/jobs/{job_id}/defocus-map")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_defocus_map"
