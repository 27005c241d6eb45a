"""Kubernetes manifests (kustomize): every file parses and is listed, selectors and named ports
line up, the essentials hold (probes, one GPU per worker, graceful stop, KEDA on RQ's queue list
with a warm replica, durable Redis, monitors that select the pods), and the queue key the
autoscaler watches is the one RQ really fills."""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis
import yaml
from rq import Queue

from service.config import Settings
from tests.deploy.checkers import kubectl, run_checker
from tests.deploy.deployment_files import (
    K8S_DIR,
    load_yaml,
    load_yaml_documents,
    settings_env_names,
)

Manifest = dict[str, Any]


def _kustomization() -> Manifest:
    kustomization: Manifest = load_yaml(K8S_DIR / "kustomization.yaml")
    return kustomization


def _manifests() -> list[Manifest]:
    return [
        doc for name in _kustomization()["resources"] for doc in load_yaml_documents(K8S_DIR / name)
    ]


def _one(kind: str, name: str) -> Manifest:
    (found,) = [m for m in _manifests() if m["kind"] == kind and m["metadata"]["name"] == name]
    return found


def _settings_env() -> dict[str, str]:
    (generator,) = [
        g for g in _kustomization()["configMapGenerator"] if g["name"] == "swintormer-settings"
    ]
    values: dict[str, str] = {}
    for env_file in generator["envs"]:
        for line in (K8S_DIR / env_file).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, value = line.partition("=")
                values[name] = value
    return values


def _pod_spec(name: str, kind: str = "Deployment") -> Manifest:
    spec: Manifest = _one(kind, name)["spec"]["template"]["spec"]
    return spec


def _container(name: str, kind: str = "Deployment") -> Manifest:
    (container,) = _pod_spec(name, kind)["containers"]
    return container


def _port_names(container: Manifest) -> set[str]:
    return {port["name"] for port in container.get("ports", [])}


def test_every_yaml_file_is_a_listed_resource_or_the_kustomization() -> None:
    listed = set(_kustomization()["resources"])
    on_disk = {path.name for path in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    for generator in _kustomization()["configMapGenerator"]:
        for source in [*generator.get("envs", []), *generator.get("files", [])]:
            assert (K8S_DIR / source).is_file()


def test_kustomize_builds_and_wires_the_generated_config_maps() -> None:
    result = run_checker(kubectl(), "kustomize", K8S_DIR)
    assert result.returncode == 0, result.stderr
    built = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert {doc["metadata"].get("namespace", "swintormer") for doc in built} == {"swintormer"}
    config_maps = {doc["metadata"]["name"] for doc in built if doc["kind"] == "ConfigMap"}
    for doc in built:
        if doc["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        pod = doc["spec"]["template"]["spec"]
        referenced = {
            source["configMapRef"]["name"]
            for container in pod["containers"]
            for source in container.get("envFrom", [])
        } | {
            volume["configMap"]["name"]
            for volume in pod.get("volumes", [])
            if "configMap" in volume
        }
        # kustomize appends a content hash, so a settings change rolls the pods
        assert referenced <= config_maps, doc["metadata"]["name"]
        assert all(re.search(r"-[a-z0-9]{10}$", name) for name in referenced)


def test_every_object_is_complete_and_namespaced_by_kustomize() -> None:
    assert _kustomization()["namespace"] == "swintormer"
    for manifest in _manifests():
        assert manifest["apiVersion"]
        assert manifest["kind"]
        assert manifest["metadata"]["name"]
        assert "namespace" not in manifest["metadata"], "kustomize sets the namespace"


def test_workload_selectors_match_their_pod_labels() -> None:
    for manifest in _manifests():
        if manifest["kind"] in {"Deployment", "StatefulSet"}:
            selector = manifest["spec"]["selector"]["matchLabels"]
            labels = manifest["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), manifest["metadata"]["name"]


def test_services_select_pods_and_target_named_ports() -> None:
    workloads = [m for m in _manifests() if m["kind"] in {"Deployment", "StatefulSet"}]
    for service in (m for m in _manifests() if m["kind"] == "Service"):
        selector = service["spec"]["selector"]
        matches = [
            w
            for w in workloads
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, service["metadata"]["name"]
        (container,) = matches[0]["spec"]["template"]["spec"]["containers"]
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in _port_names(container)


def test_containers_read_only_known_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(_settings_env()) <= settings_env_names()
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in _settings_env().items():
        monkeypatch.setenv(name, value)
    Settings()  # the ConfigMap's values are valid settings
    for manifest in _manifests():
        if manifest["kind"] in {"Deployment", "StatefulSet"}:
            for container in manifest["spec"]["template"]["spec"]["containers"]:
                names = {env["name"] for env in container.get("env", [])}
                assert {n for n in names if n.startswith("SWINTORMER_")} <= settings_env_names()


def test_gateway_has_probes_on_its_health_endpoints() -> None:
    container = _container("swintormer-gateway")
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["readinessProbe"]["httpGet"]["port"] in _port_names(container)
    env = {e["name"]: e["value"] for e in container["env"]}
    (http,) = container["ports"]
    assert env["SWINTORMER_PORT"] == str(http["containerPort"])
    assert _pod_spec("swintormer-gateway")["securityContext"]["runAsNonRoot"] is True


def test_worker_holds_one_gpu_and_outlives_its_longest_job() -> None:
    container = _container("swintormer-worker")
    assert container["command"] == ["python", "-m", "worker"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    job_timeout_s = Settings(
        job_timeout_s=int(_settings_env()["SWINTORMER_JOB_TIMEOUT_S"])
    ).job_timeout_s
    assert _pod_spec("swintormer-worker")["terminationGracePeriodSeconds"] >= job_timeout_s
    (metrics,) = container["ports"]
    assert str(metrics["containerPort"]) == _settings_env()["SWINTORMER_WORKER_METRICS_PORT"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe in container
    assert "replicas" not in _one("Deployment", "swintormer-worker")["spec"], "KEDA owns replicas"


def test_keda_scales_workers_on_the_rq_queue_list_and_keeps_one_warm() -> None:
    scaled = _one("ScaledObject", "swintormer-worker")["spec"]
    assert scaled["scaleTargetRef"]["name"] == "swintormer-worker"
    assert scaled["minReplicaCount"] >= 1
    assert scaled["maxReplicaCount"] > scaled["minReplicaCount"]
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "redis"
    metadata = trigger["metadata"]
    assert metadata["listName"] == f"rq:queue:{_settings_env()['SWINTORMER_QUEUE_NAME']}"
    assert int(metadata["listLength"]) >= 1
    host, port = metadata["address"].rsplit(":", 1)
    redis_service = _one("Service", "swintormer-redis")
    assert host.split(".")[:2] == [redis_service["metadata"]["name"], _kustomization()["namespace"]]
    assert int(port) == redis_service["spec"]["ports"][0]["port"]
    assert _settings_env()["SWINTORMER_REDIS_URL"].startswith(
        f"redis://{host.split('.')[0]}:{port}/"
    )


def test_redis_is_a_durable_queue() -> None:
    config = dict(
        line.split(None, 1)
        for line in (K8S_DIR / "redis.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert config["maxmemory-policy"] == "noeviction"
    maxmemory_gib = float(config["maxmemory"].removesuffix("gb"))
    container = _container("swintormer-redis", "StatefulSet")
    limit_gib = float(container["resources"]["limits"]["memory"].removesuffix("Gi"))
    assert limit_gib > maxmemory_gib, "the pod limit must leave room above maxmemory"
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/data", "/etc/redis"}
    assert _one("StatefulSet", "swintormer-redis")["spec"]["volumeClaimTemplates"]


def test_monitors_select_the_gateway_service_and_the_worker_pods() -> None:
    service_monitor = _one("ServiceMonitor", "swintormer-gateway")["spec"]
    gateway_service = _one("Service", "swintormer-gateway")
    assert (
        service_monitor["selector"]["matchLabels"].items()
        <= gateway_service["metadata"]["labels"].items()
    )
    assert {e["port"] for e in service_monitor["endpoints"]} <= {
        p["name"] for p in gateway_service["spec"]["ports"]
    }
    pod_monitor = _one("PodMonitor", "swintormer-worker")["spec"]
    worker_pods = _one("Deployment", "swintormer-worker")["spec"]["template"]["metadata"]["labels"]
    assert pod_monitor["selector"]["matchLabels"].items() <= worker_pods.items()
    assert {e["port"] for e in pod_monitor["podMetricsEndpoints"]} <= _port_names(
        _container("swintormer-worker")
    )


@pytest.mark.integration
def test_rq_keeps_queued_jobs_in_the_list_keda_watches(redis_client: redis.Redis) -> None:
    queue_name = _settings_env()["SWINTORMER_QUEUE_NAME"]
    queue = Queue(queue_name, connection=redis_client)
    queue.enqueue("worker.tasks.deblur", "job-input-id")
    queue.enqueue("worker.tasks.deblur", "job-input-id-2")
    list_name = _one("ScaledObject", "swintormer-worker")["spec"]["triggers"][0]["metadata"][
        "listName"
    ]
    assert redis_client.type(list_name) == b"list"
    assert redis_client.llen(list_name) == 2
