"""Metrics against scikit-image's reference implementation; baselines on a known blur."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from model.data.degrade import convolve
from model.evaluation.baselines import richardson_lucy, unsharp_mask, wiener, wiener_sweep
from model.evaluation.metrics import psnr, ssim
from model.psf import disk_psf


def _smooth_image(h: int = 96, w: int = 80, seed: int = 0) -> np.ndarray:
    """A natural-ish test image: a few blurred random rectangles plus a ramp."""
    rng = np.random.default_rng(seed)
    image = np.zeros((h, w, 3), np.float32) + np.linspace(0.2, 0.6, w)[None, :, None]
    for _ in range(12):
        y, x = rng.integers(0, h - 10), rng.integers(0, w - 10)
        image[y : y + rng.integers(5, 30), x : x + rng.integers(5, 30)] = rng.random(3)
    return convolve(image, disk_psf(0.7))


def test_psnr_known_value_and_border() -> None:
    reference = np.zeros((40, 40, 3), np.float32)
    restored = reference + 0.1
    assert psnr(restored, reference) == pytest.approx(20.0)
    assert psnr(reference, reference) == math.inf
    # Errors confined to the 16 px border do not count.
    restored = reference.copy()
    restored[:16] = 1.0
    assert psnr(restored, reference) == math.inf
    with pytest.raises(ValueError, match="border"):
        psnr(np.zeros((30, 30, 3)), np.zeros((30, 30, 3)))
    with pytest.raises(ValueError, match="shapes"):
        psnr(np.zeros((40, 40, 3)), np.zeros((40, 41, 3)))


def test_ssim_matches_scikit_image() -> None:
    reference = _smooth_image()
    restored = np.clip(reference + np.random.default_rng(1).normal(0, 0.05, reference.shape), 0, 1)
    b = 16
    expected = structural_similarity(
        restored[b:-b, b:-b],
        reference[b:-b, b:-b],
        channel_axis=2,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert ssim(restored, reference) == pytest.approx(expected, abs=1e-6)
    assert ssim(reference, reference) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="too small for SSIM"):
        ssim(reference[:40], reference[:40])


def test_wiener_and_rl_undo_a_known_blur_better_than_the_input() -> None:
    sharp = _smooth_image(seed=2)
    psf = disk_psf(3.0)
    blurry = convolve(sharp, psf)
    floor = psnr(blurry, sharp)
    assert psnr(wiener(blurry, psf, 1e-4), sharp) > floor + 5
    assert psnr(richardson_lucy(blurry, psf), sharp) > floor + 2
    sweep = list(wiener_sweep(blurry, psf, [1e-4, 1e-1]))
    np.testing.assert_allclose(sweep[0], wiener(blurry, psf, 1e-4))
    assert psnr(sweep[1], sharp) < psnr(sweep[0], sharp)  # over-regularised
    with pytest.raises(ValueError, match="balance"):
        wiener(blurry, psf, 0.0)


def test_unsharp_mask_sharpens_edges_and_keeps_flat_regions() -> None:
    flat = np.full((40, 40, 3), 0.5, np.float32)
    np.testing.assert_allclose(unsharp_mask(flat), 0.5, atol=1e-6)
    sharp = _smooth_image(seed=3)
    blurry = convolve(sharp, disk_psf(3.0))
    restored = unsharp_mask(blurry)
    assert np.abs(np.diff(restored, axis=1)).sum() > 1.2 * np.abs(np.diff(blurry, axis=1)).sum()
    assert psnr(restored, sharp) > psnr(blurry, sharp)
