"""Classical deblurring baselines the network must beat, on (H, W, 3) float32 images in [0, 1].

* `wiener`: non-blind Wiener(-Hunt) deconvolution, regularised by a Laplacian (high
  frequencies, where natural images have little power and noise dominates, are damped most;
  the formulation of `skimage.restoration.wiener`). Given the true PSF and the best balance
  per condition it is an oracle no blind method has. A scalar (white) regulariser scores lower
  on the noisy cells of our evaluation set (docs/evaluation.md has the numbers).
* `richardson_lucy`: the Poisson maximum-likelihood iteration with the true PSF.
* `unsharp_mask`: what a photo editor does; blind, fixed parameters.

Deconvolution in the Fourier domain assumes a periodic image, so both non-blind methods
reflect-pad the input (by `EDGE_PAD_PX` + the PSF radius) and crop back: the seams of a
periodic wrap would otherwise ring across the whole image.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from model.data.degrade import convolve, crop_planar, reflect_pad_planar, transfer_function
from model.deconvolution import LAPLACIAN_TAPS
from model.psf import gaussian_psf

EDGE_PAD_PX = 16
RL_ITERATIONS = 30
UNSHARP_SIGMA_PX = 2.0
UNSHARP_AMOUNT = 1.0


def edge_taper(
    padded: np.ndarray, otf: np.ndarray, margin: int, size: tuple[int, int]
) -> np.ndarray:
    """Make the periodic wrap of a padded image look blurred by the PSF (MATLAB's edgetaper).

    Deconvolution divides by the transfer function, which is near zero at some frequencies
    for a disk; a seam that the PSF did not produce has energy there and rings across the
    whole image. Blending the padding into its own circularly blurred copy removes the seam.

    Args:
        padded: (C, H', W') from `reflect_pad_planar(image, margin)`.
        otf: its transfer function (`transfer_function(psf, (H', W'))`).
        margin: the padding before the image; size: the image's (H, W).
    """
    blurred = np.fft.irfft2(np.fft.rfft2(padded) * otf, s=padded.shape[1:])
    weights = []
    for length, inner in zip(padded.shape[1:], size, strict=True):
        ramp = np.ones(length)
        ramp[:margin] = np.linspace(0.0, 1.0, margin, endpoint=False)
        tail = length - margin - inner
        ramp[margin + inner :] = np.linspace(1.0, 0.0, tail + 1)[1:]
        weights.append(ramp)
    weight = np.outer(weights[0], weights[1])
    return weight * padded + (1.0 - weight) * blurred


# The discrete Laplacian: Wiener's regulariser, growing with frequency (the bank's too).
LAPLACIAN = np.array(LAPLACIAN_TAPS, np.float32)


def wiener_sweep(
    blurry: np.ndarray, psf: np.ndarray, balances: Sequence[float]
) -> Iterator[np.ndarray]:
    """Wiener deconvolution, X = conj(H) Y / (|H|^2 + balance |L|^2), for several balances.

    The padded spectrum is computed once and reused, so a sweep costs one inverse FFT a balance.

    Args:
        blurry: (H, W, 3) image.
        psf: (k, k) kernel (odd k), the true blur.
        balances: noise-to-signal power ratios (> 0); larger = smoother.

    Yields:
        (H, W, 3) float32 restorations clipped to [0, 1], one per balance, in order.
    """
    margin = EDGE_PAD_PX + psf.shape[0] // 2
    padded = reflect_pad_planar(blurry, margin)
    shape = padded.shape[1:]
    otf = transfer_function(psf, shape)
    padded = edge_taper(padded, otf, margin, blurry.shape[:2])
    spectrum = np.fft.rfft2(padded) * np.conj(otf)
    power = np.abs(otf) ** 2
    regulariser = np.abs(transfer_function(LAPLACIAN, shape)) ** 2
    for balance in balances:
        if balance <= 0:
            raise ValueError(f"balance must be > 0, got {balance}")
        restored = np.fft.irfft2(spectrum / (power + balance * regulariser), s=shape)
        yield np.clip(crop_planar(restored, margin, blurry), 0.0, 1.0)


def wiener(blurry: np.ndarray, psf: np.ndarray, balance: float) -> np.ndarray:
    """Wiener deconvolution with one balance; see `wiener_sweep`."""
    return next(wiener_sweep(blurry, psf, [balance]))


def richardson_lucy(
    blurry: np.ndarray, psf: np.ndarray, iterations: int = RL_ITERATIONS
) -> np.ndarray:
    """Richardson-Lucy deconvolution: x <- x * H^T (y / (H x)), starting from x = y.

    Args:
        blurry: (H, W, 3) image.
        psf: (k, k) kernel (odd k), the true blur.
        iterations: number of multiplicative updates.

    Returns:
        (H, W, 3) float32, clipped to [0, 1].
    """
    margin = EDGE_PAD_PX + psf.shape[0] // 2
    padded = reflect_pad_planar(blurry, margin)
    shape = padded.shape[1:]
    otf = transfer_function(psf, shape)
    observed = np.clip(edge_taper(padded, otf, margin, blurry.shape[:2]), 1e-4, None)
    adjoint = np.conj(otf)

    def apply(image: np.ndarray, transfer: np.ndarray) -> np.ndarray:
        return np.fft.irfft2(np.fft.rfft2(image) * transfer, s=shape)

    estimate = observed.copy()
    for _ in range(iterations):
        ratio = observed / np.maximum(apply(estimate, otf), 1e-6)
        estimate = estimate * apply(ratio, adjoint)
    return np.clip(crop_planar(estimate, margin, blurry), 0.0, 1.0)


def unsharp_mask(
    blurry: np.ndarray, sigma_px: float = UNSHARP_SIGMA_PX, amount: float = UNSHARP_AMOUNT
) -> np.ndarray:
    """Unsharp masking: y + amount * (y - gaussian(y)), clipped to [0, 1]."""
    smooth = convolve(blurry, gaussian_psf(sigma_px))
    return np.clip(blurry + amount * (blurry - smooth), 0.0, 1.0).astype(np.float32)
