"""Parameter and MAC counts: the released network's known figures, and the prior's budget."""

from __future__ import annotations

import pytest

from model.config import DefocusConfig, PriorConfig, preset
from model.defocus import DefocusFrontEnd
from model.profile import front_end_cost, prior_cost, profile_network


def test_paper_counts_match_the_released_network() -> None:
    counts = profile_network(preset("paper"), 256, 256)
    assert counts.parameters == 25_177_224
    assert counts.macs_thop == 28_219_645_952  # the figure the authors left in their file
    assert round(counts.macs_total / 1e9, 2) == 33.15  # with attention matmuls
    assert counts.macs_conv_linear < counts.macs_thop < counts.macs_total


def test_lite_meets_the_papers_efficiency_claim() -> None:
    counts = profile_network(preset("lite"), 256, 256)
    assert counts.macs_total <= 8.0e9


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


def test_front_end_cost_counts_the_estimator_and_estimates_the_bank() -> None:
    # narrow re-blurs: a wide one's padded borders would dominate so small an estimator's cost
    small = DefocusConfig(
        radii_px=(0.0, 1.0, 2.0),
        estimator_width=8,
        estimator_blocks=1,
        reblur_sigmas_px=(1.0, 2.0),
    )
    cost = front_end_cost(small, 64, 64)
    assert cost.parameters == sum(p.numel() for p in DefocusFrontEnd(small).parameters())
    assert cost.estimator > 0
    bigger = front_end_cost(DefocusConfig(radii_px=(0.0, 1.0, 2.0, 3.0)), 64, 64)
    assert bigger.bank_fft_flops > cost.bank_fft_flops  # one more radius, more transforms
    assert front_end_cost(small, 128, 128).estimator == pytest.approx(4 * cost.estimator, rel=0.05)
