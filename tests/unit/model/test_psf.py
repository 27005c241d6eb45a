"""Point-spread functions: the disk, its dual-pixel halves, the Gaussian, FFT lengths."""

from __future__ import annotations

import numpy as np
import pytest

from model.psf import disk_psf, dual_pixel_psfs, fast_fft_length, gaussian_psf


@pytest.mark.parametrize("radius", [0.0, 0.01, 0.049, 0.05, 0.3, 0.5, 1.0, 1.5, 3.0, 4.5, 8.0])
def test_disk_psf_sums_to_one_and_is_symmetric(radius: float) -> None:
    psf = disk_psf(radius)
    assert psf.dtype == np.float32
    assert psf.shape[0] == psf.shape[1]
    assert psf.shape[0] % 2 == 1
    assert psf.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(psf, psf[::-1, :], atol=1e-7)
    np.testing.assert_allclose(psf, psf.T, atol=1e-7)


def test_disk_psf_support_and_area() -> None:
    psf = disk_psf(3.0)
    assert psf.shape == (7, 7)
    # The unnormalised taps are pixel coverages: they add up to the disk's area.
    coverage = psf / psf.max()
    assert coverage.sum() == pytest.approx(np.pi * 9, rel=0.02)
    assert psf[3, 0] > 0
    assert psf[0, 0] == 0


def test_disk_psf_rejects_bad_radius() -> None:
    with pytest.raises(ValueError, match="radius"):
        disk_psf(-1.0)
    with pytest.raises(ValueError, match="radius"):
        disk_psf(float("nan"))


@pytest.mark.parametrize("signed_radius", [2.5, -2.5, 0.7, -0.7])
def test_dual_pixel_views_average_to_disk_and_swap_in_front_of_focus(signed_radius: float) -> None:
    left, right = dual_pixel_psfs(signed_radius)
    assert left.sum() == pytest.approx(1.0, abs=1e-6)
    assert right.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(0.5 * (left + right), disk_psf(abs(signed_radius)), atol=1e-6)
    np.testing.assert_allclose(left, right[:, ::-1], atol=1e-7)
    columns = np.arange(left.shape[1]) - left.shape[1] // 2
    left_centroid = float((left.sum(axis=0) * columns).sum())
    # Behind the focal plane the left view leans left; in front of it the views swap.
    assert np.sign(left_centroid) == -np.sign(signed_radius)


@pytest.mark.parametrize("sigma", [0.6, 1.0, 2.0])
def test_gaussian_psf_is_normalised_symmetric_and_wide_enough(sigma: float) -> None:
    psf = gaussian_psf(sigma)
    assert psf.sum() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(psf, psf.T, atol=1e-7)
    half = psf.shape[0] // 2
    assert half >= 3 * sigma
    taps = np.arange(-half, half + 1)
    variance = float((psf.sum(axis=0) * taps**2).sum())
    assert variance == pytest.approx(sigma**2, rel=0.05)


def test_fast_fft_length_is_five_smooth() -> None:
    assert fast_fft_length(422) == 432
    assert fast_fft_length(7) == 8
    assert fast_fft_length(1) == 1
