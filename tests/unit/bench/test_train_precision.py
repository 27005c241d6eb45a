"""bench/train_precision.py times training steps of a network in each precision."""

from __future__ import annotations

import torch

from bench.train_precision import MODES, step_seconds, time_modes
from model.config import preset
from model.swintormer import Swintormer


def test_every_mode_gets_rounds_times_steps_timings() -> None:
    seconds = time_modes("tiny", batch=1, patch_px=32, rounds=2, steps=2)
    assert set(seconds) == set(MODES)
    for timings in seconds.values():
        assert len(timings) == 4
        assert all(t > 0 for t in timings)


def test_a_step_trains_the_network() -> None:
    torch.manual_seed(0)
    network = Swintormer(preset("tiny"))
    optimiser = torch.optim.AdamW(network.parameters(), lr=1e-3)
    images = torch.rand(1, network.config.in_channels, 32, 32)
    before = [p.detach().clone() for p in network.parameters()]
    for mode in MODES:
        step_seconds(network, optimiser, images, mode)
    changed = [not torch.equal(a, p) for a, p in zip(before, network.parameters(), strict=True)]
    assert any(changed)
    assert all(p.grad is None for p in network.parameters())  # gradients cleared after a step
