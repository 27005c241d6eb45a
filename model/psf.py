"""Point-spread functions of defocus: the anti-aliased disk and its dual-pixel half views.

A thin lens images a point at depth d as a disk whose radius grows with |d - d_focus| (the
circle of confusion). Both the training degradation (`model.data.degrade`) and the deployed
deconvolution bank (`model.deconvolution`) draw their kernels from here, so the bank inverts
exactly the blur the data is made with when the radius is right.
"""

from __future__ import annotations

import math

import numpy as np

# Sub-samples per pixel side when integrating the disk over a pixel (anti-aliasing).
PSF_SUPERSAMPLE = 16
# Radii below this are a point: the disk lies inside the centre pixel and covers none of its
# sub-samples (the nearest sits sqrt(2) / (2 * PSF_SUPERSAMPLE) = 0.044 px from the centre).
POINT_RADIUS_PX = 0.05


def disk_grid(radius_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sub-pixel sample positions of the smallest odd kernel that holds the disk.

    Returns:
        (x, y, inside): arrays (k, k, S, S) of sample offsets from the kernel centre in pixels
        and whether each lies in the disk; k = 2 * ceil(radius - 0.5) + 1, S = PSF_SUPERSAMPLE.
    """
    half = max(0, math.ceil(radius_px - 0.5))
    size = 2 * half + 1
    sub = (np.arange(PSF_SUPERSAMPLE) + 0.5) / PSF_SUPERSAMPLE - 0.5
    taps = np.arange(size) - half
    coords = (taps[:, None] + sub[None, :]).astype(np.float64)  # (k, S)
    y = coords[:, None, :, None] * np.ones((1, size, 1, PSF_SUPERSAMPLE))
    x = coords[None, :, None, :] * np.ones((size, 1, PSF_SUPERSAMPLE, 1))
    return x, y, x**2 + y**2 <= radius_px**2


def disk_psf(radius_px: float) -> np.ndarray:
    """Anti-aliased disk point-spread function.

    Args:
        radius_px: disk radius in pixels (>= 0). Radius 0 is the identity kernel.

    Returns:
        (k, k) float32 kernel summing to 1, k = 2 * ceil(radius - 0.5) + 1.
    """
    if not math.isfinite(radius_px) or radius_px < 0:
        raise ValueError(f"disk radius must be finite and >= 0, got {radius_px}")
    if radius_px < POINT_RADIUS_PX:
        return np.ones((1, 1), np.float32)
    _, _, inside = disk_grid(radius_px)
    coverage = inside.mean(axis=(2, 3))
    return (coverage / coverage.sum()).astype(np.float32)


def dual_pixel_psfs(signed_radius_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Left and right dual-pixel views of a disk.

    Args:
        signed_radius_px: circle-of-confusion radius; positive behind the focal plane,
            negative in front of it (the two half-aperture views swap sides).

    Returns:
        (left, right): (k, k) float32 kernels, each summing to 1; their mean is `disk_psf(|r|)`.
    """
    radius = abs(signed_radius_px)
    if not math.isfinite(radius):
        raise ValueError(f"disk radius must be finite, got {signed_radius_px}")
    if radius < POINT_RADIUS_PX:
        point = np.ones((1, 1), np.float32)
        return point, point.copy()
    x, _, inside = disk_grid(radius)
    # A linear ramp across the aperture: the left photodiode collects light from the left half.
    ramp = np.clip(0.5 - x / (2.0 * radius), 0.0, 1.0)
    left = (inside * ramp).mean(axis=(2, 3))
    right = (inside * (1.0 - ramp)).mean(axis=(2, 3))
    if signed_radius_px < 0:
        left, right = right, left
    return (left / left.sum()).astype(np.float32), (right / right.sum()).astype(np.float32)


def gaussian_psf(sigma_px: float) -> np.ndarray:
    """Normalised (k, k) Gaussian kernel, k = 2 * ceil(3 sigma) + 1."""
    half = max(1, int(np.ceil(3 * sigma_px)))
    taps = np.arange(-half, half + 1, dtype=np.float64)
    line = np.exp(-(taps**2) / (2 * sigma_px**2))
    kernel = np.outer(line, line)
    return (kernel / kernel.sum()).astype(np.float32)


def fast_fft_length(n: int) -> int:
    """Smallest 5-smooth integer >= n (FFT lengths with only factors 2, 3, 5 are fast)."""
    size = n
    while True:
        rest = size
        for factor in (2, 3, 5):
            while rest % factor == 0:
                rest //= factor
        if rest == 1:
            return size
        size += 1
