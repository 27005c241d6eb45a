"""The prior's MAC budget: at most 10% of the network at 256x256 with T = 4."""

from __future__ import annotations

import pytest

from model.config import preset
from model.prior import PriorConfig
from model.prior_cost import prior_cost
from model.profile import profile_network
from swintormer.cli import main


@pytest.mark.parametrize("name", ["base", "lite"])
def test_default_prior_costs_at_most_a_tenth_of_the_network_at_256(name: str) -> None:
    config = preset(name)
    prior = PriorConfig(in_channels=config.in_channels)
    cost = prior_cost(config, prior, 256, 256)
    assert cost.steps == 4
    assert cost.total == cost.encoder + 4 * cost.denoiser_step + cost.film
    assert 0 < cost.film < cost.denoiser_step < cost.encoder
    network = profile_network(config, 256, 256)
    assert cost.total <= 0.10 * network.macs_total
    assert cost.total <= 0.10 * network.macs_conv_linear
    assert 0 < cost.parameters < 0.1 * network.parameters


def test_cost_grows_with_steps_and_area() -> None:
    config = preset("lite")
    prior = PriorConfig()
    four, eight = prior_cost(config, prior, 256, 256), prior_cost(config, prior, 256, 256, steps=8)
    assert eight.total - four.total == 4 * four.denoiser_step
    # 4x the pixels, 4x the MACs, up to the per-step timestep MLP
    assert prior_cost(config, prior, 512, 512).total == pytest.approx(4 * four.total, rel=1e-3)


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
