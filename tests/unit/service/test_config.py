"""Settings: defaults are sane, the environment overrides them, bad values are refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.config import Settings
from service.schemas import DeblurOptions


def test_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("SWINTORMER_"):
            monkeypatch.delenv(name)
    settings = Settings()
    assert settings.redis_url is None
    assert settings.max_upload_bytes > 0
    assert settings.api_keys == []


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWINTORMER_REDIS_URL", "redis://example:6379/1")
    monkeypatch.setenv("SWINTORMER_API_KEYS", '["a", "b"]')
    monkeypatch.setenv("SWINTORMER_TILE_PX", "512")
    settings = Settings()
    assert settings.redis_url == "redis://example:6379/1"
    assert [key.get_secret_value() for key in settings.api_keys] == ["a", "b"]
    assert settings.tile_px == 512


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SWINTORMER_PORT", "0"),
        ("SWINTORMER_TILE_OVERLAP_PX", "7"),
        ("SWINTORMER_PRECISION", "int8"),
        ("SWINTORMER_SELF_ENSEMBLE", "3"),
        ("SWINTORMER_MAX_SELF_ENSEMBLE", "0"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_the_default_self_ensemble_must_be_within_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWINTORMER_SELF_ENSEMBLE", "8")
    monkeypatch.setenv("SWINTORMER_MAX_SELF_ENSEMBLE", "4")
    with pytest.raises(ValidationError, match="max_self_ensemble"):
        Settings()
    monkeypatch.setenv("SWINTORMER_SELF_ENSEMBLE", "4")
    assert Settings().self_ensemble == 4


def test_a_job_runs_the_model_once_per_copy_and_pass() -> None:
    settings = Settings(self_ensemble=2)
    assert settings.refines_blur(None) is False
    assert settings.model_runs(DeblurOptions()) == 2
    assert settings.model_runs(DeblurOptions(refine_blur=True)) == 4
    assert settings.model_runs(DeblurOptions(self_ensemble=8, refine_blur=True)) == 16
    refining = Settings(refine_blur=True)
    assert refining.refines_blur(None) is True
    assert refining.refines_blur(False) is False
    assert refining.model_runs(DeblurOptions()) == 2
    assert refining.model_runs(DeblurOptions(refine_blur=False)) == 1
