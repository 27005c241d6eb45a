"""bench/self_ensemble_pairs.py restores each pair once per ensemble size through the deployed
model; bench/pair_tables.py's `pair_scores` times and scores every variant on every pair."""

from __future__ import annotations

import pytest
import torch

from bench.pair_tables import pair_scores
from bench.self_ensemble_pairs import ensembles
from model.config import model_preset
from model.data.degrade import BlurDistribution
from model.data.pairs import DefocusPatches, PatchSettings
from model.evaluation.metrics import psnr
from model.restorer import build_restorer
from model.self_ensemble import self_ensemble


def test_each_size_restores_every_pair_as_the_self_ensemble_does() -> None:
    torch.manual_seed(0)
    restorer = build_restorer(model_preset("tiny-defocus")).eval()
    settings = PatchSettings(
        patch_px=48, dead_leaves_fraction=1.0, blur=BlurDistribution(max_px=4.0)
    )
    pairs = DefocusPatches([], [], 48, settings, seed=5)
    quality, seconds = pair_scores(pairs, 2, ensembles(restorer, [1, 4]))
    assert quality.shape == seconds.shape == (2, 2)
    assert (seconds > 0).all()
    blurry, sharp, _ = pairs.pair(1)
    image = torch.from_numpy(blurry).permute(2, 0, 1)[None]  # (1, 3, 48, 48)
    with torch.inference_mode():
        once = restorer.run(image).restored
        four = self_ensemble(lambda tiles: restorer.run(tiles).restored, 4)(image)
    assert quality[1, 0] == pytest.approx(psnr(once[0].permute(1, 2, 0).numpy(), sharp))
    assert quality[1, 1] == pytest.approx(psnr(four[0].permute(1, 2, 0).numpy(), sharp))
    assert quality[1, 1] != quality[1, 0]
