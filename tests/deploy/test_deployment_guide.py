"""docs/deployment.md agrees with the files it describes: the ports, compose services,
environment variables, alert names and paths it mentions exist."""

from __future__ import annotations

import re
import shlex

from tests.deploy.checkers import ROOT
from tests.deploy.deployment_files import (
    COMPOSE,
    K8S_DIR,
    PROMETHEUS_DIR,
    compose_services,
    env_example,
    load_yaml,
    load_yaml_documents,
    settings_env_names,
)

GUIDE = ROOT / "docs" / "deployment.md"
# options of `docker compose` and its subcommands that take a value
_OPTIONS_WITH_VALUE = {"-f", "--file", "-p", "--project-name", "--profile", "--env-file", "-e"}
# subcommands whose first argument is a service and the rest its command
_FIRST_ARGUMENT_IS_SERVICE = {"exec", "run"}


def _guide() -> str:
    return GUIDE.read_text()


def _code_blocks() -> list[str]:
    return re.findall(r"```(?:bash)?\n(.*?)```", _guide(), flags=re.DOTALL)


def _compose_commands() -> list[list[str]]:
    commands = []
    for block in _code_blocks():
        for line in block.splitlines():
            for part in line.split(" #", 1)[0].split("&&"):
                if part.strip().startswith("docker compose"):
                    commands.append(shlex.split(part.split("|", 1)[0])[2:])
    return commands


def _services_named(arguments: list[str]) -> list[str]:
    """The service names in `docker compose` arguments (after the global options)."""
    positional: list[str] = []
    skip = False
    for word in arguments:
        if skip:
            skip = False
        elif word in _OPTIONS_WITH_VALUE:
            skip = True
        elif not word.startswith("-"):
            positional.append(word)
    if not positional:
        return []
    subcommand, *rest = positional
    if subcommand in _FIRST_ARGUMENT_IS_SERVICE:
        return rest[:1]
    return rest


def _known_ports() -> set[int]:
    ports = {6379}  # Redis, the compose service and the Kubernetes Service
    text = COMPOSE.read_text()
    ports |= {int(port) for port in re.findall(r":-?(\d{4,5})\}?[:\"]", text)}
    ports |= {int(port) for port in re.findall(r"\b(\d{4,5})\b", text) if int(port) > 1000}
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    for job in config["scrape_configs"]:
        for group in job["static_configs"]:
            ports |= {int(target.rsplit(":", 1)[1]) for target in group["targets"]}
    for path in K8S_DIR.glob("*.yaml"):
        ports |= {
            int(port) for port in re.findall(r"(?:containerPort|port): (\d+)", path.read_text())
        }
    return ports


def test_compose_commands_name_real_services_and_files() -> None:
    services = set(compose_services())
    commands = _compose_commands()
    assert commands, "the guide shows no docker compose command"
    for arguments in commands:
        unknown = set(_services_named(arguments)) - services
        assert not unknown, f"docker compose {' '.join(arguments)}: no service {sorted(unknown)}"
        for index, word in enumerate(arguments):
            if word in {"-f", "--file"}:
                assert (ROOT / arguments[index + 1]).is_file()
            if word == "--profile":
                profiles = {p for s in compose_services().values() for p in s.get("profiles", [])}
                assert arguments[index + 1] in profiles


def test_every_service_is_explained() -> None:
    for name in compose_services():
        assert f"`{name}`" in _guide(), f"the guide never mentions the {name} service"


def test_ports_are_the_files_ports() -> None:
    mentioned = {
        int(port) for port in re.findall(r"(?:127\.0\.0\.1|localhost|[\w-]+):(\d{4,5})\b", _guide())
    }
    assert mentioned, "the guide mentions no port"
    assert mentioned - _known_ports() == set()
    gateway = compose_services()["gateway"]
    assert f"127.0.0.1:{gateway['environment']['SWINTORMER_PORT']}" in _guide()


def test_environment_variables_exist() -> None:
    compose_env = {
        name for service in compose_services().values() for name in service.get("environment") or {}
    }
    known = settings_env_names() | set(env_example()) | compose_env
    mentioned = set(re.findall(r"\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)\b", _guide()))
    assert mentioned - known == set(), "the guide names variables no file defines"


def test_alert_names_and_kubernetes_objects_exist() -> None:
    alerts = {
        rule["alert"]
        for group in load_yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]
        for rule in group["rules"]
    }
    assert set(re.findall(r"`(Swintormer\w+)`", _guide())) == alerts
    names = {
        doc["metadata"]["name"]
        for path in K8S_DIR.glob("*.yaml")
        for doc in load_yaml_documents(path)
        if "metadata" in doc
    }
    mentioned = set(re.findall(r"`(swintormer-[\w-]+)`", _guide()))
    assert mentioned
    assert mentioned <= names
