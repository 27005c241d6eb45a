"""`swintormer profile`: the table of counts, with and without the prior's share."""

from __future__ import annotations

import pytest

from model.config import PriorConfig, preset
from model.profile import prior_cost
from swintormer.cli import main


def test_profile_command_prints_the_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--preset", "tiny", "--size", "64", "64"]) == 0
    out = capsys.readouterr().out
    assert "287,527" in out
    assert "GMAC with attention matmuls" in out


def test_profile_command_reports_the_prior_share(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--preset", "tiny", "--size", "64", "64", "--prior-steps", "8"]) == 0
    out = capsys.readouterr().out
    cost = prior_cost(preset("tiny"), PriorConfig(steps=8), 64, 64)
    assert "prior, T=8" in out
    assert f"{cost.total / 1e9:.3f}" in out
    assert "share of the network" in out


def test_profile_command_without_prior_prints_no_prior(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--preset", "tiny", "--size", "64", "64", "--prior-steps", "0"]) == 0
    assert "prior" not in capsys.readouterr().out


def test_profile_command_adds_the_front_end(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--preset", "tiny", "--size", "64", "64", "--defocus"]) == 0
    out = capsys.readouterr().out
    assert "defocus front end" in out
    assert "GMAC estimator" in out
