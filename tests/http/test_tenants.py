"""Jobs and Idempotency-Keys belong to the API key that made them; other keys get 404."""

from __future__ import annotations

import redis

from service.gateway.deps import key_id
from service.storage import known_key
from tests import sample_images
from tests.http.clients import MakeClient

KEY_A, KEY_B = "key-a-0123456789", "key-b-0123456789"


def test_another_key_cannot_see_download_cancel_or_replay(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(api_keys=[KEY_A, KEY_B])
    a, b = {"X-API-Key": KEY_A}, {"X-API-Key": KEY_B}
    upload = {"file": ("a.png", sample_images.png_rgb())}
    keyed = {**a, "Idempotency-Key": "order-1"}
    job_id = client.post("/deblur", files=upload, headers=keyed).json()["id"]

    for method, path in [
        ("GET", f"/jobs/{job_id}"),
        ("GET", f"/jobs/{job_id}/result"),
        ("DELETE", f"/jobs/{job_id}"),
    ]:
        response = client.request(method, path, headers=b)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "job_not_found"
    assert client.get(f"/jobs/{job_id}", headers=a).json()["status"] == "queued"

    replay = client.post("/deblur", files=upload, headers={**b, "Idempotency-Key": "order-1"})
    assert replay.status_code == 202
    assert replay.json()["id"] != job_id  # B's own job, not A's
    assert client.post("/deblur", files=upload, headers=keyed).json()["id"] == job_id

    stored = redis_client.get(known_key(job_id))
    assert stored == key_id(KEY_A).encode()
    strings = [name for name in redis_client.keys("*") if redis_client.type(name) == b"string"]
    stored_values = [redis_client.get(name) for name in strings]
    assert all(KEY_A.encode() not in value for value in stored_values if isinstance(value, bytes))
