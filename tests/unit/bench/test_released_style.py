"""The released-style speed baseline computes the released network: golden vectors, and ours."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.released_style import ReleasedStyleSwintormer
from model.checkpoint import CheckpointError
from model.config import SwintormerConfig
from model.released import map_released_state_dict, to_released_state_dict
from model.swintormer import Swintormer
from tests.reference import GOLDEN_CONFIG, released_state


def test_released_style_reproduces_the_golden_output(golden: dict[str, np.ndarray]) -> None:
    state = released_state(golden)
    baseline = ReleasedStyleSwintormer(GOLDEN_CONFIG).eval()
    baseline.load_state_dict(state, strict=True)  # released names, strictly
    with torch.no_grad():
        restored = baseline(torch.from_numpy(golden["input"]))
    assert (restored - torch.from_numpy(golden["output"])).abs().max() <= 1e-5
    # and our export of the converted weights is the released state_dict again
    back = to_released_state_dict(map_released_state_dict(state))
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_released_style_matches_our_network_with_per_level_windows() -> None:
    config = SwintormerConfig(
        in_channels=3, dim=8, num_blocks=(2, 2, 1, 2), heads=(1, 2, 2, 4), window_sizes=(8, 4, 4, 2)
    )
    ours = Swintormer(config).eval()
    baseline = ReleasedStyleSwintormer(config).eval()
    baseline.load_state_dict(to_released_state_dict(ours.state_dict()), strict=True)
    image = torch.rand(2, 3, config.size_multiple, 2 * config.size_multiple)
    with torch.no_grad():
        torch.testing.assert_close(ours(image), baseline(image), atol=1e-5, rtol=0)


def test_film_weights_cannot_be_exported_to_the_released_format() -> None:
    config = SwintormerConfig(**{**GOLDEN_CONFIG.to_dict(), "cond_channels": 2})
    with pytest.raises(CheckpointError, match=r"film\.0\.weight"):
        to_released_state_dict(Swintormer(config).state_dict())
