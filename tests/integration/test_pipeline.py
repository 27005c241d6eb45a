"""The job pipeline end to end: gateway -> Redis/RQ -> `python -m worker` -> result."""

from __future__ import annotations

import io
import signal
import time
from collections.abc import Callable

import numpy as np
import pytest
import redis
from PIL import Image
from starlette.testclient import TestClient

from service.gateway.app import create_app
from service.jobs import REQUEUED_WITHIN_GRACES
from service.storage import input_key
from tests import sample_images
from tests.integration.processes import StartWorker, finish_burst, settings_from, wait_for

pytestmark = pytest.mark.integration


def submit(client: TestClient, data: bytes, **form: object) -> str:
    response = client.post(
        "/deblur",
        files={"file": ("in.png", data)},
        data={key: str(value) for key, value in form.items()},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def view(client: TestClient, job_id: str) -> dict[str, object]:
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


def progress_done(client: TestClient, job_id: str) -> int:
    progress = view(client, job_id)["progress"]
    assert isinstance(progress, dict)
    return int(progress["done"])


def result_image(client: TestClient, job_id: str) -> Image.Image:
    response = client.get(f"/jobs/{job_id}/result")
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content))


ENSEMBLE: dict[str, object] = {"seed": 3, "self_ensemble": 4}
KINDS: list[tuple[str, Callable[[], bytes], dict[str, object], tuple[int, int], str, str]] = [
    ("rgb", sample_images.png_rgb, {}, (40, 30), "RGB", "PNG"),
    ("rgba", sample_images.png_rgba, {}, (40, 30), "RGBA", "PNG"),
    ("gray", sample_images.png_gray, {}, (40, 30), "L", "PNG"),
    ("gray16", sample_images.png_gray16, {}, (40, 30), "I;16", "PNG"),
    ("exif", sample_images.jpeg_exif_rotated, {}, (30, 40), "RGB", "PNG"),
    ("cmyk", sample_images.jpeg_cmyk, {"output_format": "jpeg"}, (40, 30), "CMYK", "JPEG"),
    ("webp", sample_images.webp_rgb, {"output_format": "webp"}, (40, 30), "RGB", "WEBP"),
    ("big", lambda: sample_images.png_rgb(150, 110), {"seed": 3}, (150, 110), "RGB", "PNG"),
    # the same image and seed, each tile also restored flipped three ways and averaged
    ("ensemble", lambda: sample_images.png_rgb(150, 110), ENSEMBLE, (150, 110), "RGB", "PNG"),
    # 16-bit RGB PNG out (Pillow opens it as RGB); TIFF and HEIC in
    ("rgb16", sample_images.png_rgb16, {}, (20, 10), "RGB", "PNG"),
    ("tiff16", sample_images.tiff_rgb16, {"output_format": "tiff"}, (20, 10), "RGB", "TIFF"),
    ("heic", sample_images.heic, {}, (40, 30), "RGB", "PNG"),
]


def test_every_kind_round_trips_and_failures_are_reported(
    gateway: TestClient,
    start_worker: StartWorker,
    redis_client: redis.Redis,
    worker_env: dict[str, str],
) -> None:
    jobs = {name: submit(gateway, build(), **form) for name, build, form, *_ in KINDS}
    # failure paths, in the same burst: corrupt bytes in the store, input expired, canceled
    corrupt = submit(gateway, sample_images.png_rgb())
    redis_client.set(input_key(corrupt), sample_images.png_rgb()[:200])
    expired = submit(gateway, sample_images.png_rgb())
    redis_client.delete(input_key(expired))
    canceled = submit(gateway, sample_images.png_rgb())
    assert gateway.delete(f"/jobs/{canceled}").status_code == 200
    # no worker has published its model's limits yet: this passes the gateway, and the tiny
    # model (2 prior steps) cannot run it
    impossible = submit(gateway, sample_images.png_rgb(), prior_steps=3)
    # a gateway with a 1 s job timeout enqueues a job too slow for it
    with TestClient(
        create_app(settings_from(worker_env, job_timeout_s=1, job_s_per_megapixel=0))
    ) as strict:
        # 2048 px: ~1400 tiles of 64 px, ~15 s on an idle core (512 px took 0.9 s: too close)
        too_slow = submit(strict, sample_images.png_rgb(2048, 2048))

    log = finish_burst(start_worker("--burst", SWINTORMER_LOG_LEVEL="INFO"))
    # one model load for every job of the burst: the worker stays warm
    assert log.count("worker.runtime INFO loaded ") == 1, log
    assert log.count("Job OK") == len(KINDS), log

    for name, _, _, size, mode, image_format in KINDS:
        state = view(gateway, jobs[name])
        assert state["status"] == "succeeded", (name, state, log)
        progress = state["progress"]
        assert isinstance(progress, dict)
        assert progress["done"] == progress["total"] > 0, name
        image = result_image(gateway, jobs[name])
        assert (image.size, image.mode, image.format) == (size, mode, image_format), name
        assert redis_client.get(input_key(jobs[name])) is None  # input dropped once done

    plain, averaged = (np.asarray(result_image(gateway, jobs[n])) for n in ("big", "ensemble"))
    assert not np.array_equal(plain, averaged)  # the option reached the worker

    first = gateway.get(f"/jobs/{jobs['rgb']}/result")
    assert first.headers["content-type"] == "image/png"
    assert first.headers["content-disposition"] == 'inline; filename="in-deblurred.png"'
    cached = gateway.get(
        f"/jobs/{jobs['rgb']}/result", headers={"If-None-Match": first.headers["etag"]}
    )
    assert cached.status_code == 304

    for job_id, code in [(corrupt, "invalid_image"), (expired, "input_expired")]:
        state = view(gateway, job_id)
        assert state["status"] == "failed"
        error = state["error"]
        assert isinstance(error, dict)
        assert error["code"] == code
        assert error["message"]
        result = gateway.get(f"/jobs/{job_id}/result")
        assert result.status_code == 409
    assert view(gateway, canceled)["status"] == "canceled"
    refused = view(gateway, impossible)
    assert refused["status"] == "failed"
    assert refused["error"]["code"] == "invalid_options"  # type: ignore[index]
    assert log.count(f"job {impossible} failed") == 1, log  # one attempt: never retried
    # now that the worker has published its limits, the gateway refuses it at once
    assert (
        gateway.post(
            "/deblur", files={"file": ("a.png", sample_images.png_rgb())}, data={"prior_steps": "3"}
        ).status_code
        == 422
    )
    slow = view(gateway, too_slow)
    assert slow["status"] == "failed"
    assert slow["error"]["code"] == "timeout"  # type: ignore[index]


def test_killed_worker_job_is_retried_at_the_front_within_three_graces(
    gateway: TestClient, worker_env: dict[str, str], start_worker: StartWorker
) -> None:
    # 512 px: ~100 tiles, ~0.9 s on an idle core, so the kill lands mid-job (256 px: ~0.25 s)
    job_id = submit(gateway, sample_images.png_rgb(512, 512))
    first = start_worker()
    wait_for(lambda: progress_done(gateway, job_id) > 0, 60, "the first worker to start tiles")
    behind = submit(gateway, sample_images.png_rgb(64, 64))  # queued while the first runs
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    killed_at = time.monotonic()
    assert view(gateway, job_id)["status"] == "running"  # nobody knows yet
    # its entry expires abandoned_grace_s (3 s here) after the last heartbeat; a status read
    # that comes a grace after one that saw it expired reaps it, to the front
    wait_for(lambda: view(gateway, job_id)["status"] == "queued", 30, "the job to be requeued", 0.2)
    grace_s = float(worker_env["SWINTORMER_ABANDONED_GRACE_S"])
    # (+2 s: RQ's registry scores are whole seconds)
    assert time.monotonic() - killed_at < REQUEUED_WITHIN_GRACES * grace_s + 2
    assert view(gateway, job_id)["queue_position"] == 0
    assert view(gateway, behind)["queue_position"] == 1
    # the dead worker stops counting as ready within the grace too (RQ's registry scores are
    # whole seconds, so the job may be requeued up to 1 s before the worker looks dead)
    wait_for(lambda: gateway.get("/readyz").status_code == 503, 5, "/readyz to drop the worker")
    finish_burst(start_worker("--burst"))
    assert view(gateway, job_id)["status"] == "succeeded"
    assert result_image(gateway, job_id).size == (512, 512)
    assert view(gateway, behind)["status"] == "succeeded"


def test_readiness_cancel_of_a_running_job_and_warm_shutdown(
    gateway: TestClient, start_worker: StartWorker
) -> None:
    assert gateway.get("/readyz").status_code == 503
    worker = start_worker()
    wait_for(lambda: gateway.get("/readyz").status_code == 200, 60, "/readyz", 0.2)
    # ~360 tiles, ~3.5 s on an idle core: still running when the cancel arrives (256 px was
    # sometimes done first)
    to_cancel = submit(gateway, sample_images.png_rgb(1024, 1024))
    wait_for(lambda: progress_done(gateway, to_cancel) > 0, 60, "the job to start")
    response = gateway.delete(f"/jobs/{to_cancel}")
    assert response.status_code == 202
    wait_for(lambda: view(gateway, to_cancel)["status"] == "canceled", 30, "the cancel")
    state = view(gateway, to_cancel)
    assert state["error"] is None

    finishing = submit(gateway, sample_images.png_rgb(256, 256))
    wait_for(lambda: progress_done(gateway, finishing) > 0, 60, "the second job to start")
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    assert view(gateway, finishing)["status"] == "succeeded"
    wait_for(lambda: gateway.get("/readyz").status_code == 503, 10, "/readyz to fail again")
