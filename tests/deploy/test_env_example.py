"""`.env.example` and `service.config.Settings` list the same settings, and the example's values
are valid settings equal to the defaults except where containers need another value."""

from __future__ import annotations

import pytest

from service.config import Settings
from tests.deploy.deployment_files import env_example, settings_env_names

# values a container needs that differ from the defaults for a developer's machine
CONTAINER_VALUES = {
    "SWINTORMER_REDIS_URL": "redis://redis:6379/0",
    "SWINTORMER_HOST": "0.0.0.0",
    "SWINTORMER_DEVICE": "cuda",
    "SWINTORMER_WORKER_METRICS_HOST": "0.0.0.0",
}


def _example_settings() -> dict[str, str | None]:
    return {name: value for name, value in env_example().items() if name.startswith("SWINTORMER_")}


def test_every_setting_is_in_env_example_and_nothing_else() -> None:
    documented = set(_example_settings())
    assert settings_env_names() - documented == set(), "settings missing from .env.example"
    assert documented - settings_env_names() == set(), ".env.example has unknown settings"


def test_env_example_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in _example_settings().items():
        if value is not None:
            monkeypatch.setenv(name, value)
    Settings()


def test_env_example_values_are_the_defaults_unless_containers_need_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    defaults = Settings()
    prefix = "SWINTORMER_"
    for name, value in _example_settings().items():
        field = name.removeprefix(prefix).lower()
        if name in CONTAINER_VALUES:
            assert value == CONTAINER_VALUES[name]
            continue
        if value is None:
            assert getattr(defaults, field) is None, f"{name} is unset but has a default"
            continue
        monkeypatch.setenv(name, value)
        assert getattr(Settings(), field) == getattr(defaults, field), f"{name}={value}"
        monkeypatch.delenv(name)
