"""Readers for the deployment files the tests cross-check against each other and the code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from service.config import Settings
from tests.deploy.checkers import ROOT

COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_CPU = ROOT / "docker-compose.cpu.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
K8S_DIR = ROOT / "deploy" / "k8s"
DASHBOARD = GRAFANA_DIR / "dashboards" / "swintormer.json"
GUIDE = ROOT / "docs" / "deployment.md"

_ENV_LINE = re.compile(r"^(?P<unset>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


class _ComposeLoader(yaml.SafeLoader):
    """A safe loader that also reads Compose's `!reset` tag (used by the CPU override)."""


def _reset(loader: yaml.SafeLoader, node: yaml.Node) -> None:
    return None


_ComposeLoader.add_constructor("!reset", _reset)


def load_yaml(path: Path) -> Any:
    """One YAML document (merge keys resolved, `!reset` read as null)."""
    return yaml.load(path.read_text(), Loader=_ComposeLoader)  # a SafeLoader subclass


def load_yaml_documents(path: Path) -> list[Any]:
    """Every document of a multi-document YAML file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def compose_services(path: Path = COMPOSE) -> dict[str, dict[str, Any]]:
    """The `services` mapping of a compose file."""
    services: dict[str, dict[str, Any]] = load_yaml(path)["services"]
    return services


def settings_env_names() -> set[str]:
    """The environment variable of every field of `service.config.Settings`."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return {prefix + name.upper() for name in Settings.model_fields}


def env_example() -> dict[str, str | None]:
    """The variables of .env.example: name -> value, or None for a documented-but-unset line."""
    variables: dict[str, str | None] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _ENV_LINE.match(line.strip())
        if match:
            is_unset = match["unset"] is not None
            variables[match["name"]] = None if is_unset else match["value"]
    return variables


def compose_variables(*paths: Path) -> set[str]:
    """The variables a compose file interpolates (`${NAME}`, `${NAME:-default}`, ...)."""
    pattern = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")
    return {name for path in paths for name in pattern.findall(path.read_text())}


def duration_s(text: str) -> float:
    """Seconds in a Compose duration such as `660s`, `11m` or `1m30s`."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(number) * units[unit] for number, unit in parts)


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard's JSON model."""
    model: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return model


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel of the dashboard, including those inside collapsed rows."""
    panels: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def alert_expressions() -> dict[str, str]:
    """Alert (or recording rule) name -> PromQL expression, from deploy/prometheus/alerts.yml."""
    return {
        rule.get("alert", rule.get("record")): rule["expr"]
        for group in load_yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]
        for rule in group["rules"]
    }
