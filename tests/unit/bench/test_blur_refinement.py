"""bench/blur_refinement.py scores the first pass and every evidence variant of each pair;
bench/pair_tables.py turns such tables into the printed cells."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.blur_refinement import scores
from bench.pair_tables import gain_cells, mean_of_kinds
from model.config import model_preset
from model.data.degrade import BlurDistribution
from model.data.pairs import DefocusPatches, PatchSettings
from model.evaluation.metrics import psnr
from model.reblur import radius_evidence
from model.restorer import build_restorer


def test_scores_restore_each_pair_once_and_again_per_variant() -> None:
    torch.manual_seed(0)
    restorer = build_restorer(model_preset("tiny-defocus")).eval()
    assert restorer.defocus is not None
    settings = PatchSettings(
        patch_px=48, dead_leaves_fraction=1.0, blur=BlurDistribution(max_px=4.0)
    )
    pairs = DefocusPatches([], [], 48, settings, seed=5)
    quality, error = scores(restorer, pairs, 2, [(3, 1.0, 5.2), (7, 4.0, 4.1)])
    assert quality.shape == error.shape == (2, 3)
    assert (error >= 0).all()
    blurry, sharp, radius_map = pairs.pair(1)
    image = torch.from_numpy(blurry).permute(2, 0, 1)[None]
    with torch.inference_mode():
        first = restorer.run(image)
        radii = restorer.defocus.config.radii_px
        evidence = radius_evidence(first.restored, image, radii, 4.0, 7, 4.1)
        second = restorer.run(image, front=restorer.defocus(image, radius_evidence=evidence))
    assert quality[1, 0] == pytest.approx(psnr(first.restored[0].permute(1, 2, 0).numpy(), sharp))
    assert quality[1, 2] == pytest.approx(psnr(second.restored[0].permute(1, 2, 0).numpy(), sharp))
    assert second.radius_px is not None
    expected_error = np.abs(second.radius_px[0, 0].numpy() - radius_map).mean()
    assert error[1, 2] == pytest.approx(expected_error)


def test_cells_give_means_gains_and_shares_and_the_best_variant() -> None:
    table = np.array([[30.0, 30.5, 29.0], [32.0, 31.9, 31.0]])
    assert gain_cells(table) == ["31.00", "31.20 (+0.20, 50% gained)", "30.00 (-1.00, 0% gained)"]
    row, best = mean_of_kinds([table.mean(axis=0), np.array([20.0, 20.2, 19.0])])
    assert row == "| mean of the kinds | 25.50 | 25.70 | 24.50 |"
    assert best == 1
