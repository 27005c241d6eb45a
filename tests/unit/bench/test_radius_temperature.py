"""bench/radius_temperature.py scores a model at each temperature, then restores its config."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bench.radius_temperature import scores
from model.config import model_preset
from model.data.degrade import BlurDistribution
from model.data.pairs import DefocusPatches, PatchSettings
from model.evaluation.metrics import psnr
from model.restorer import build_restorer


def test_scores_restore_each_pair_at_each_temperature() -> None:
    torch.manual_seed(0)
    restorer = build_restorer(model_preset("tiny-defocus")).eval()
    assert restorer.defocus is not None
    trained = restorer.defocus.config
    settings = PatchSettings(
        patch_px=48, dead_leaves_fraction=1.0, blur=BlurDistribution(max_px=4.0)
    )
    pairs = DefocusPatches([], [], 48, settings, seed=5)
    table = scores(restorer, pairs, 2, [1.0, 0.25])
    assert table.shape == (2, 2)
    assert restorer.defocus.config == trained
    blurry, sharp, _ = pairs.pair(1)
    with torch.inference_mode():
        plain = restorer.restore(torch.from_numpy(blurry).permute(2, 0, 1)[None])
    assert table[1, 0] == pytest.approx(psnr(plain[0].permute(1, 2, 0).numpy(), sharp))
    assert table[1, 1] != table[1, 0]  # the sharper mix restores differently
    restorer.defocus.config = dataclasses.replace(trained, radius_temperature=0.25)
    with torch.inference_mode():
        sharper = restorer.restore(torch.from_numpy(blurry).permute(2, 0, 1)[None])
    assert table[1, 1] == pytest.approx(psnr(sharper[0].permute(1, 2, 0).numpy(), sharp))
