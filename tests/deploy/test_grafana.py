"""The Grafana dashboard shows what operators need from the provisioned data source, and the
readers that check its queries against the exporters' source (test_references_to_code.py) are
right about prometheus_client's naming and PromQL."""

from __future__ import annotations

import pytest

from tests.deploy.deployment_files import (
    GRAFANA_DIR,
    K8S_DIR,
    PROMETHEUS_DIR,
    dashboard,
    dashboard_panels,
    load_yaml,
)
from tests.deploy.exported_metrics import (
    UnresolvedMetricNameError,
    exported_series,
    metrics_in_promql,
)


def test_dashboard_shows_what_operators_need() -> None:
    queries = " ".join(t["expr"] for panel in dashboard_panels() for t in panel.get("targets", []))
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}," in queries
    needed = {
        "request latency": "swintormer_http_request_duration_seconds_bucket",
        "job latency": "swintormer_worker_job_duration_seconds_bucket",
        "queue depth": "swintormer_queue_jobs",
        "throughput in MP/s": "swintormer_worker_pixels_total[$__rate_interval])) / 1e6",
        "jobs by outcome": "sum by (outcome) (rate(swintormer_worker_jobs_total",
        "VRAM per worker": "swintormer_worker_vram_allocated_bytes",
        "workers ready": "sum(swintormer_worker_model_ready)",
    }
    missing = [what for what, query in needed.items() if query not in queries]
    assert not missing


def test_panels_are_well_formed_and_use_the_provisioned_data_source() -> None:
    model = dashboard()
    variables = {v["name"]: v for v in model["templating"]["list"]}
    provisioned = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = provisioned["datasources"]
    assert variables["datasource"]["current"]["value"] == source["uid"]
    ids = [panel["id"] for panel in dashboard_panels()]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in dashboard_panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        assert panel["targets"]
        assert panel["description"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
    assert model["uid"]
    assert model["title"]


def test_prometheus_rule_for_kubernetes_matches_the_alert_file() -> None:
    rule = load_yaml(K8S_DIR / "prometheusrule.yaml")
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == load_yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]


def test_exporter_reader_follows_prometheus_client_naming() -> None:
    source = """
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
PREFIX = "swintormer"
WORKER = PREFIX + "_worker"
JOBS = Counter(f"{WORKER}_jobs_total", "jobs", ["outcome"])
LATENCY = Histogram("request_duration", "latency", namespace=PREFIX, unit="seconds")
READY = Gauge(name=f"{WORKER}_ready", documentation="model loaded")

def collect():
    yield GaugeMetricFamily("swintormer_queue_jobs", "jobs", labels=["state"])
"""
    assert exported_series(source) == {
        "swintormer_worker_jobs_total",
        "swintormer_worker_jobs_created",
        "swintormer_request_duration_seconds_bucket",
        "swintormer_request_duration_seconds_count",
        "swintormer_request_duration_seconds_sum",
        "swintormer_request_duration_seconds_created",
        "swintormer_worker_ready",
        "swintormer_queue_jobs",
    }


def test_exporter_reader_refuses_names_it_cannot_evaluate() -> None:
    with pytest.raises(UnresolvedMetricNameError, match=r"m\.py:3"):
        exported_series("from prometheus_client import Gauge\n\nGauge(make_name(), 'x')\n", "m.py")


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        (
            "histogram_quantile(0.95, sum by (le) (rate(a_seconds_bucket[$__rate_interval])))",
            {"a_seconds_bucket"},
        ),
        ('sum(q{state="queued"}) > 10 and delta(sum(q)[15m:1m]) > 0', {"q"}),
        ("sum(r) < 1 or absent(r)", {"r"}),
        ("max by (instance) (u_bytes / t_bytes) > 0.9", {"u_bytes", "t_bytes"}),
        (
            'sum(rate(j_total{outcome!="ok"}[5m])) / on (job) group_left (x) k offset 1h',
            {"j_total", "k"},
        ),
    ],
)
def test_promql_reader_finds_metric_names(expression: str, names: set[str]) -> None:
    assert metrics_in_promql(expression) == names
