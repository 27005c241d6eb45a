"""`swintormer gateway` refuses to start without a Redis URL, saying what to set."""

from __future__ import annotations

import os

import pytest

from swintormer.cli import main


def test_gateway_without_redis_url_explains(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("SWINTORMER_"):
            monkeypatch.delenv(name)
    assert main(["gateway", "--port", "8123"]) == 2
    assert "SWINTORMER_REDIS_URL" in capsys.readouterr().err
