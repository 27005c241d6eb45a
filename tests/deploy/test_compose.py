"""docker-compose.yml and its CPU override: valid against the Compose specification (dclint),
and wired the way the deployment needs (durable private Redis, gateway on loopback, one GPU
per worker, graceful stops, every worker scraped, Grafana provisioned)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from service.config import Settings
from tests.deploy.checkers import ROOT, dclint, run_checker
from tests.deploy.deployment_files import (
    COMPOSE,
    COMPOSE_CPU,
    GRAFANA_DIR,
    PROMETHEUS_DIR,
    compose_services,
    compose_variables,
    duration_s,
    env_example,
    load_yaml,
    settings_env_names,
)

DCLINT_CONFIG = ROOT / "deploy" / "dclint.yaml"


def _workers() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose_services().items()
        if service.get("command") == ["python", "-m", "worker"]
    }


def _gpu_devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = (
        service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    )
    return devices


def test_dclint_finds_nothing() -> None:
    result = run_checker(
        dclint(),
        "--config",
        DCLINT_CONFIG,
        "--max-warnings",
        "0",
        "--color",
        "false",
        COMPOSE,
        COMPOSE_CPU,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dclint_rejects_what_the_compose_specification_forbids(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  gateway:\n    image: swintormer:1\n    replicas_typo: 2\n")
    result = run_checker(dclint(), "--config", DCLINT_CONFIG, "--color", "false", broken)
    assert result.returncode != 0
    assert "invalid-schema" in result.stdout


def test_redis_is_durable_refuses_to_evict_and_stays_private() -> None:
    redis = compose_services()["redis"]
    command = " ".join(redis["command"])
    for option in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert option in command
    assert "--maxmemory ${REDIS_MAXMEMORY" in command
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert "healthcheck" in redis
    assert "ports" not in redis, "Redis must not be published on the host"


def test_gateway_listens_on_loopback_and_waits_for_a_healthy_redis() -> None:
    gateway = compose_services()["gateway"]
    (port,) = gateway["ports"]
    published = re.fullmatch(r"(?P<ip>[\d.]+):(?P<host>\$\{[^}]+\}|\d+):(?P<container>\d+)", port)
    assert published is not None, port
    assert published["ip"] == "127.0.0.1"
    container_port = published["container"]
    assert container_port == gateway["environment"]["SWINTORMER_PORT"]
    assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"
    assert f":{container_port}/healthz" in " ".join(gateway["healthcheck"]["test"])


def test_one_gpu_per_worker_service() -> None:
    workers = _workers()
    assert workers, "no worker service runs `python -m worker`"
    seen: list[str] = []
    for name, worker in workers.items():
        (device,) = _gpu_devices(worker)
        assert (device["driver"], device["capabilities"]) == ("nvidia", ["gpu"]), name
        (device_id,) = device["device_ids"]
        seen.append(device_id)
        assert name == f"worker-gpu{device_id}"
    assert len(seen) == len(set(seen)), f"two workers share a GPU: {seen}"


def test_workers_stop_gracefully_after_the_longest_job() -> None:
    timeout_env = env_example()["SWINTORMER_JOB_TIMEOUT_S"]
    assert timeout_env is not None
    job_timeout_s = Settings(job_timeout_s=int(timeout_env)).job_timeout_s
    for name, worker in _workers().items():
        assert duration_s(worker["stop_grace_period"]) >= job_timeout_s, name
        assert worker["depends_on"]["redis"]["condition"] == "service_healthy"


def test_every_worker_is_scraped_on_its_metrics_port() -> None:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {t for group in jobs["worker"]["static_configs"] for t in group["targets"]}
    expected = set()
    for name, worker in _workers().items():
        port = worker["environment"]["SWINTORMER_WORKER_METRICS_PORT"]
        assert port in worker["expose"]
        assert f":{port}/metrics" in " ".join(worker["healthcheck"]["test"])
        expected.add(f"{name}:{port}")
    assert targets == expected
    gateway_port = compose_services()["gateway"]["environment"]["SWINTORMER_PORT"]
    assert {t for g in jobs["gateway"]["static_configs"] for t in g["targets"]} == {
        f"gateway:{gateway_port}"
    }


def test_service_environment_names_are_settings() -> None:
    known = settings_env_names()
    for path in (COMPOSE, COMPOSE_CPU):
        for name, service in compose_services(path).items():
            names = set(service.get("environment") or {})
            unknown = {env for env in names if env.startswith("SWINTORMER_")} - known
            assert not unknown, f"{path.name} {name}: {sorted(unknown)} are not settings"


def test_interpolated_variables_and_env_example_agree() -> None:
    used = compose_variables(COMPOSE, COMPOSE_CPU)
    example = {name for name in env_example() if not name.startswith("SWINTORMER_")}
    assert used - example == set(), "compose reads variables .env.example does not document"
    assert example - used == set(), ".env.example lists variables compose does not read"


def test_grafana_is_provisioned_from_the_mounted_folders() -> None:
    grafana = compose_services()["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"] if volume.startswith("./"))
    assert all((ROOT / source).is_dir() for source in mounts)
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "swintormer.yml")
    (dashboards,) = provider["providers"]
    assert mounts["./deploy/grafana/dashboards"] == dashboards["options"]["path"]
    assert list((GRAFANA_DIR / "dashboards").glob("*.json"))
    datasource = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    (source,) = datasource["datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose_services()
    prometheus_mounts = compose_services()["prometheus"]["volumes"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus_mounts


@pytest.mark.parametrize("name", ["worker-gpu0", "worker-gpu1"])
def test_cpu_override_drops_the_gpu_and_builds_the_cpu_wheel(name: str) -> None:
    override = compose_services(COMPOSE_CPU)
    assert set(override) <= set(compose_services()), "the override names unknown services"
    worker = override[name]
    assert worker["deploy"] is None, "the override must reset the GPU reservation"
    assert worker["environment"]["SWINTORMER_DEVICE"] == "cpu"
    assert worker["build"]["args"]["TORCH_CUDA"] == "cpu"
