"""POST /deblur: accepted uploads, every refusal and its code, idempotency, backpressure."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx2
import pytest
import redis
from rq.serializers import JSONSerializer
from starlette.testclient import TestClient

from service.gateway.submission import request_fingerprint
from service.schemas import DeblurOptions, ModelLimits
from service.storage import IdempotencyRecord, Storage, idempotency_key, input_key
from tests import sample_images
from tests.http.clients import MakeClient


def post(client: TestClient, data: bytes, **fields: object) -> httpx2.Response:
    """POST /deblur with `data` as the file and `fields` as form options."""
    form = {key: str(value) for key, value in fields.items()}
    return client.post("/deblur", files={"file": ("photo.png", data)}, data=form)


def test_accepted_job_is_queued_with_ids_only(
    client: TestClient, redis_client: redis.Redis
) -> None:
    data = sample_images.png_rgb()
    response = client.post("/deblur", files={"file": ("my photo.png", data, "image/png")})
    assert response.status_code == 202
    body = response.json()
    assert response.headers["location"] == f"/jobs/{body['id']}"
    assert body["status"] == "queued"
    assert body["status_url"] == f"/jobs/{body['id']}"
    assert body["result_url"] == f"/jobs/{body['id']}/result"
    assert body["queue_position"] == 0
    assert body["expires_at"] > body["created_at"]
    # bytes under their own key with an expiry; the RQ job holds JSON without them
    assert redis_client.get(input_key(body["id"])) == data
    assert redis_client.ttl(input_key(body["id"])) > 0
    job_hash = redis_client.hgetall(f"rq:job:{body['id']}")
    assert len(job_hash[b"data"]) < 1000
    data_field = job_hash[b"data"]
    assert isinstance(data_field, bytes)
    call = JSONSerializer.loads(zlib.decompress(data_field))
    assert call[0] == "worker.tasks.deblur"
    assert call[3]["payload"]["filename"] == "my_photo"
    assert int(job_hash[b"timeout"]) > 0
    assert int(job_hash[b"result_ttl"]) > 0
    assert int(job_hash[b"failure_ttl"]) > 0
    assert int(job_hash[b"ttl"]) > 0
    assert int(job_hash[b"retries_left"]) == 2


@pytest.mark.parametrize(
    "builder",
    [
        sample_images.png_rgba,
        sample_images.png_gray,
        sample_images.png_gray16,
        sample_images.jpeg_rgb,
        sample_images.jpeg_cmyk,
        sample_images.jpeg_exif_rotated,
        sample_images.webp_rgb,
        sample_images.png_with_icc,
        sample_images.png_rgb16,
        sample_images.png_rgba16,
        sample_images.tiff_rgb16,
        sample_images.tiff_rgb8,
        sample_images.heic,
    ],
)
def test_every_supported_kind_is_accepted(client: TestClient, builder: Callable[[], bytes]) -> None:
    assert post(client, builder()).status_code == 202


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (sample_images.png_rgb()[:300], 400, "invalid_image"),
        (b"", 400, "invalid_image"),
        (sample_images.gif(), 415, "unsupported_media_type"),
        (b"%PDF-1.4 not an image", 415, "unsupported_media_type"),
        (sample_images.png_bomb(), 413, "too_many_pixels"),
        (sample_images.png_rgb(1100, 1000), 413, "too_many_pixels"),
    ],
)
def test_bad_uploads_are_refused_with_their_code(
    client: TestClient, redis_client: redis.Redis, data: bytes, status: int, code: str
) -> None:
    response = post(client, data)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert redis_client.keys("rq:job:*") == []


def test_body_over_the_limit_is_413(make_client: MakeClient) -> None:
    client = make_client(max_upload_bytes=2000)
    response = post(client, sample_images.png_rgb(200, 200))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    "fields",
    [
        {"output_format": "bmp"},
        {"quality": 0},
        {"tile_px": 8},
        {"tile_px": 100_000},
        {"tile_overlap_px": 7},
        {"prior_steps": -1},
        {"prior_steps": 0},
        {"prior_steps": 10_000},
        {"tile_px": 64, "tile_overlap_px": 64},
        {"seed": "abc"},
        {"self_ensemble": 3},
        {"self_ensemble": 0},
        {"unknown_option": 1},
    ],
)
def test_bad_options_are_422(client: TestClient, fields: dict[str, object]) -> None:
    response = post(client, sample_images.png_rgb(), **fields)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_options"


def test_self_ensemble_over_the_server_s_limit_is_422(make_client: MakeClient) -> None:
    client = make_client(max_self_ensemble=4)
    response = post(client, sample_images.png_rgb(), self_ensemble=8)
    assert response.status_code == 422
    assert "at most 4" in response.json()["error"]["message"]
    assert post(client, sample_images.png_rgb(), self_ensemble=4).status_code == 202


def test_a_self_ensemble_job_gets_time_for_every_copy(
    client: TestClient, redis_client: redis.Redis
) -> None:
    data = sample_images.png_rgb(1000, 500)  # 0.5 MP: a whole number of seconds per copy
    plain = post(client, data).json()["id"]
    eight = post(client, data, self_ensemble=8).json()["id"]
    timeouts = [int(redis_client.hget(f"rq:job:{job}", "timeout") or 0) for job in (plain, eight)]
    settings = client.app.state.settings  # type: ignore[attr-defined]
    per_copy = timeouts[0] - settings.job_timeout_s
    assert per_copy > 0
    assert timeouts[1] == settings.job_timeout_s + 8 * per_copy


@pytest.mark.parametrize(
    ("limits", "fields", "message"),
    [
        (ModelLimits(size_multiple=16, prior_steps=4), {"prior_steps": 5}, "1 to 4"),
        (ModelLimits(size_multiple=16, prior_steps=0), {"prior_steps": 1}, "no diffusion prior"),
        (
            ModelLimits(size_multiple=16, prior_steps=4),
            {"tile_px": 40, "tile_overlap_px": 32},
            "rounded down to a multiple of 16",
        ),
        (
            ModelLimits(size_multiple=16, prior_steps=4),
            {"refine_blur": "true"},
            "does not estimate the blur",
        ),
    ],
)
def test_options_the_workers_model_cannot_run_are_422(
    client: TestClient,
    redis_client: redis.Redis,
    limits: ModelLimits,
    fields: dict[str, object],
    message: str,
) -> None:
    Storage(redis_client).put_model_limits("deblur", limits)
    response = post(client, sample_images.png_rgb(), **fields)
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]["message"]
    assert post(client, sample_images.png_rgb()).status_code == 202  # the defaults run


def test_blur_refinement_is_a_choice_where_the_model_estimates_the_blur(
    client: TestClient, redis_client: redis.Redis
) -> None:
    limits = ModelLimits(size_multiple=16, prior_steps=4, estimates_blur=True)
    Storage(redis_client).put_model_limits("deblur", limits)
    for choice in ("true", "false"):
        assert post(client, sample_images.png_rgb(), refine_blur=choice).status_code == 202
    Storage(redis_client).put_model_limits(
        "deblur", limits.model_copy(update={"estimates_blur": False})
    )
    assert post(client, sample_images.png_rgb(), refine_blur="false").status_code == 202


def test_a_refined_job_gets_time_for_both_passes(
    client: TestClient, redis_client: redis.Redis
) -> None:
    data = sample_images.png_rgb(1000, 500)  # 0.5 MP: a whole number of seconds per pass
    once = post(client, data, refine_blur="false").json()["id"]
    twice = post(client, data, refine_blur="true").json()["id"]
    default = post(client, data).json()["id"]
    timeouts = [
        int(redis_client.hget(f"rq:job:{job}", "timeout") or 0) for job in (once, twice, default)
    ]
    settings = client.app.state.settings  # type: ignore[attr-defined]
    per_pass = timeouts[0] - settings.job_timeout_s
    assert per_pass > 0
    assert timeouts[1] == settings.job_timeout_s + 2 * per_pass
    assert timeouts[2] == timeouts[0]  # the server does not refine by default


def test_missing_file_is_422(client: TestClient) -> None:
    response = client.post("/deblur", data={"output_format": "png"})
    assert response.status_code == 422
    assert "file" in response.json()["error"]["message"]


def test_an_upload_under_another_field_name_is_named_in_plain_words(client: TestClient) -> None:
    response = client.post("/deblur", files={"image": ("a.png", sample_images.png_rgb())})
    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert message == "file: Field required; unknown option(s): image"


def test_idempotency_key_returns_the_same_job(
    client: TestClient, redis_client: redis.Redis
) -> None:
    data = sample_images.png_rgb()
    headers = {"Idempotency-Key": "order-17"}
    first = client.post("/deblur", files={"file": ("a.png", data)}, headers=headers)
    again = client.post("/deblur", files={"file": ("a.png", data)}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert len(redis_client.keys("rq:job:*")) == 1
    assert redis_client.ttl(idempotency_key("order-17")) > 0

    other = client.post(
        "/deblur", files={"file": ("a.png", sample_images.png_gray())}, headers=headers
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_mismatch"
    changed_options = client.post(
        "/deblur", files={"file": ("a.png", data)}, data={"seed": "3"}, headers=headers
    )
    assert changed_options.json()["error"]["code"] == "idempotency_key_mismatch"


def test_full_queue_answers_429_with_retry_after(make_client: MakeClient) -> None:
    client = make_client(max_queue_depth=2, retry_after_s=7)
    assert post(client, sample_images.png_rgb()).status_code == 202
    assert post(client, sample_images.png_rgb()).status_code == 202
    response = post(client, sample_images.png_rgb())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == "queue_full"


def test_api_keys_401_403_and_accepted(make_client: MakeClient) -> None:
    client = make_client(api_keys=["k-one", "k-two"])
    data = sample_images.png_rgb()
    missing = client.post("/deblur", files={"file": ("a.png", data)})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong = client.post("/deblur", files={"file": ("a.png", data)}, headers={"X-API-Key": "k-on"})
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "forbidden"
    good = client.post("/deblur", files={"file": ("a.png", data)}, headers={"X-API-Key": "k-two"})
    assert good.status_code == 202
    job = client.get(good.headers["location"])
    assert job.status_code == 401
    assert client.get(good.headers["location"], headers={"X-API-Key": "k-two"}).status_code == 200
    assert client.get(good.headers["location"], headers={"X-API-Key": "k-one"}).status_code == 404
    assert client.get("/healthz").status_code == 200


def test_cors_is_off_by_default_and_on_when_configured(make_client: MakeClient) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    closed = make_client().options("/deblur", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    opened = make_client(cors_origins=["https://app.example"]).options("/deblur", headers=preflight)
    assert opened.headers["access-control-allow-origin"] == "https://app.example"


def test_streamed_body_over_the_limit_is_413(make_client: MakeClient) -> None:
    client = make_client(max_upload_bytes=2000)

    def chunks() -> object:
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\n'
        for _ in range(10):
            yield b"\0" * 500

    response = client.post(
        "/deblur",
        content=chunks(),  # type: ignore[arg-type]
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_idempotency_key_of_a_request_in_flight_is_409(
    client: TestClient, redis_client: redis.Redis
) -> None:
    data = sample_images.png_rgb()
    # what a concurrent first request leaves between claiming the key and enqueueing
    record = IdempotencyRecord("f" * 32, request_fingerprint(data, DeblurOptions()))
    assert Storage(redis_client).claim_idempotency_key("k-1", record, 60) is None
    response = client.post(
        "/deblur", files={"file": ("a.png", data)}, headers={"Idempotency-Key": "k-1"}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_in_use"
    assert response.headers["retry-after"] == "1"


def test_queue_depth_holds_under_concurrent_submissions(make_client: MakeClient) -> None:
    client = make_client(max_queue_depth=5)
    data = sample_images.png_rgb()
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda _: post(client, data).status_code, range(40)))
    assert statuses.count(202) == 5, statuses
    assert statuses.count(429) == 35


def test_decodes_beyond_the_pixel_budget_wait_then_get_503(make_client: MakeClient) -> None:
    client = make_client(decode_pixel_budget=2000, decode_wait_s=0.2, retry_after_s=4)
    data = sample_images.png_rgb(40, 30)  # 1200 pixels
    budget = client.app.state.decode_budget  # type: ignore[attr-defined]
    with budget.reserve(1000, wait_s=0):  # another request is decoding 1000 pixels
        busy = post(client, data)
    assert busy.status_code == 503
    assert busy.json()["error"]["code"] == "server_busy"
    assert busy.headers["retry-after"] == "4"
    assert post(client, data).status_code == 202


def test_job_timeout_grows_with_the_image(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(job_timeout_s=600, job_s_per_megapixel=30)
    job_id = post(client, sample_images.png_rgb(1000, 1000)).json()["id"]
    assert int(redis_client.hget(f"rq:job:{job_id}", "timeout") or 0) == 630
