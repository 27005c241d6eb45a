"""Gateway /metrics: request latency, uploads, submissions by outcome, queue and workers."""

from __future__ import annotations

import re

import redis
from prometheus_client.parser import text_string_to_metric_families
from rq.worker import SimpleWorker
from starlette.testclient import TestClient

from tests import sample_images
from tests.http.clients import MakeClient


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_move_with_traffic(make_client: MakeClient, redis_client: redis.Redis) -> None:
    client = make_client(max_queue_depth=1, max_upload_bytes=100_000)
    before = scrape(client)
    assert before[("swintormer_redis_up", ())] == 1
    assert before[("swintormer_jobs_submitted_total", (("outcome", "accepted"),))] == 0

    upload = sample_images.png_rgb()
    assert client.post("/deblur", files={"file": ("a.png", upload)}).status_code == 202
    assert client.post("/deblur", files={"file": ("a.png", upload)}).status_code == 429
    assert client.post("/deblur", files={"file": ("a.png", b"junk")}).status_code == 415
    big = sample_images.png_rgb(400, 400)
    assert client.post("/deblur", files={"file": ("a.png", big)}).status_code == 413
    worker = SimpleWorker(["deblur"], connection=redis_client)
    worker.register_birth()
    try:
        after = scrape(client)
    finally:
        worker.register_death()

    def submitted(outcome: str) -> float:
        return after[("swintormer_jobs_submitted_total", (("outcome", outcome),))]

    assert submitted("accepted") == 1
    assert submitted("queue_full") == 1
    assert submitted("unsupported") == 1
    assert submitted("too_large") == 1
    assert after[("swintormer_upload_size_bytes_count", ())] == 3
    assert after[("swintormer_upload_size_bytes_sum", ())] == 2 * len(upload) + 4
    assert after[("swintormer_queue_jobs", (("state", "queued"),))] == 1
    assert after[("swintormer_queue_jobs", (("state", "started"),))] == 0
    workers = {
        labels: value for (name, labels), value in after.items() if name == "swintormer_workers"
    }
    assert sum(workers.values()) == 1
    assert workers[(("state", "busy"),)] == 0
    accepted_key = (
        "swintormer_http_request_duration_seconds_count",
        (("method", "POST"), ("route", "/deblur"), ("status", "202")),
    )
    assert after[accepted_key] == 1
    refused_key = (
        "swintormer_http_request_duration_seconds_count",
        (("method", "POST"), ("route", "unmatched"), ("status", "413")),
    )
    assert (
        after.get(refused_key, 0)
        + after.get(
            (refused_key[0], (("method", "POST"), ("route", "/deblur"), ("status", "413"))), 0
        )
        == 1
    )


def test_latency_buckets_reach_minutes(client: TestClient) -> None:
    client.get("/healthz")
    text = client.get("/metrics").text
    buckets = re.findall(r'swintormer_http_request_duration_seconds_bucket\{le="([0-9.e+]+)"', text)
    buckets += re.findall(r'le="([0-9.e+]+)",method="GET",route="/healthz"', text)
    assert max(float(bucket) for bucket in buckets) >= 300


def test_made_up_methods_do_not_grow_the_metrics(client: TestClient) -> None:
    for index in range(50):
        client.request(f"BREW{index}", "/healthz")
    text = client.get("/metrics").text
    assert "BREW" not in text
    assert 'method="other"' in text
