"""bench/blur_refinement.py scores the first pass and every evidence variant of each pair;
bench/pair_tables.py turns such tables into the printed cells."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.blur_refinement import Variant, scores, tile_pooled_evidence
from bench.pair_tables import gain_cells, mean_of_kinds
from model.config import DefocusConfig, model_preset
from model.data.dead_leaves import DeadLeavesSettings, dead_leaves
from model.data.degrade import BlurDistribution, composite_defocus, convolve
from model.data.pairs import DefocusPatches, PatchSettings
from model.evaluation.metrics import psnr
from model.psf import disk_psf
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
    quality, error = scores(restorer, pairs, 2, [Variant(3, 1.0, 5.2), Variant(7, 4.0, 4.1)])
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


BANK = DefocusConfig().radii_px


def blurred_scene(left_px: float, right_px: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(sharp, blurry), each (1, 3, 96, 96): dead leaves, the left 64 columns blurred by
    `left_px` and the rest by `right_px`."""
    scene = dead_leaves(np.random.default_rng(3), settings=DeadLeavesSettings(size_px=96))
    sharp = composite_defocus(scene, [disk_psf(0.0)] * len(scene.depths))
    blurry = np.concatenate(
        [convolve(sharp, disk_psf(left_px))[:, :64], convolve(sharp, disk_psf(right_px))[:, 64:]],
        axis=1,
    )
    sharp_t, blurry_t = (
        torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None] for a in (sharp, blurry)
    )
    return sharp_t, blurry_t


def test_a_tile_blurred_alike_pools_one_reading_over_every_cell() -> None:
    sharp, blurry = blurred_scene(BANK[4], BANK[4])
    evidence = tile_pooled_evidence(sharp, blurry, BANK, Variant(7, 0.5, 5.2, 0.5, 2.0))[0]
    assert evidence.shape == (len(BANK), 96, 96)
    assert bool((evidence.argmax(dim=0) == 4).all())
    inner = evidence[:, 8:-8, 8:-8]  # (R, h, w) away from the interpolation's borders
    torch.testing.assert_close(inner, inner[:, :1, :1].expand_as(inner))


def test_cells_that_disagree_with_the_tile_keep_their_windows_evidence() -> None:
    sharp, blurry = blurred_scene(BANK[2], BANK[5])
    pooled = tile_pooled_evidence(sharp, blurry, BANK, Variant(5, 0.5, 5.2, 0.5, 2.0))[0]
    local = radius_evidence(sharp, blurry, BANK, 0.5, 5, 5.2)[0]
    left, right = pooled[:, 8:-8, 8:48], pooled[:, 8:-8, 76:-8]  # away from the seam
    torch.testing.assert_close(right, local[:, 8:-8, 76:-8])  # its own window's
    assert bool((right.argmax(dim=0) == 5).all())
    tile_reading = left[:, 20, 20]  # (R,) a pooled cell's
    assert int(tile_reading.argmax()) == 2
    same = torch.isclose(left, tile_reading[:, None, None], rtol=1e-5, atol=1e-4)  # (R, h, w)
    pooled_share = same.all(dim=0).float().mean()
    assert float(pooled_share) > 0.8  # most of the left part reads the tile's reading
