"""bench/checkpoint_pairs.py restores the same pairs with every checkpoint and ranks them."""

from __future__ import annotations

import pytest
import torch

from bench.checkpoint_pairs import table_rows
from bench.estimator_bias import kinds
from model.config import model_preset
from model.data.degrade import BlurDistribution
from model.data.pairs import DefocusPatches, PatchSettings
from model.evaluation.metrics import psnr
from model.restorer import build_restorer


def test_rows_score_every_checkpoint_on_the_same_pairs() -> None:
    torch.manual_seed(0)
    first = build_restorer(model_preset("tiny-defocus")).eval()
    second = build_restorer(model_preset("tiny-defocus")).eval()
    settings = PatchSettings(
        patch_px=48, dead_leaves_fraction=1.0, blur=BlurDistribution(max_px=4.0)
    )
    pairs = DefocusPatches([], [], 48, settings, seed=5)
    rows = table_rows([first, first, second], {"leaves": pairs, "again": pairs}, 2)
    assert len(rows) == 3
    cells = rows[0].strip("| ").split(" | ")
    assert cells[0] == "leaves"
    assert cells[2].endswith("(+0.00, 0% gained)")  # the same model gains nothing on itself
    scores = []
    for index in range(2):
        blurry, sharp, _ = pairs.pair(index)
        with torch.inference_mode():
            restored = second.restore(torch.from_numpy(blurry).permute(2, 0, 1)[None])
        scores.append(psnr(restored[0].permute(1, 2, 0).numpy(), sharp))
    assert float(cells[3].split(" ")[0]) == pytest.approx(sum(scores) / 2, abs=0.006)
    assert rows[2].startswith("| mean of the kinds | ")


def test_kinds_without_noise_change_only_the_sensor() -> None:
    noisy, clean = kinds(), kinds(0.0)
    assert list(noisy) == list(clean)
    for name, settings in clean.items():
        assert settings.sensor.noise_sigma_max == 0.0
        assert settings.blur == noisy[name].blur
        assert settings.shapes == noisy[name].shapes
