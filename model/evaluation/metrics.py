"""Image-quality metrics as the deblurring literature reports them.

PSNR and SSIM on RGB in [0, 1] (data range 1), with a border of `border_px` pixels excluded
on every side (restoration methods differ most at the image edge, which says little about
their quality). SSIM follows Wang et al. 2004: 11x11 Gaussian window with sigma 1.5,
K1 = 0.01, K2 = 0.03, population variances, computed per channel on the valid region
(no padding) and averaged; this is `skimage.metrics.structural_similarity` with
`gaussian_weights=True, use_sample_covariance=False, data_range=1, channel_axis=2`.
"""

from __future__ import annotations

import math

import numpy as np

BORDER_PX = 16
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # 11x11 window, as in Wang et al. (truncate = 3.5 sigma in skimage)
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _crop(image: np.ndarray, border_px: int) -> np.ndarray:
    if border_px == 0:
        return image
    if min(image.shape[:2]) <= 2 * border_px:
        raise ValueError(f"image {image.shape[:2]} too small for a {border_px} px border")
    return image[border_px:-border_px, border_px:-border_px]


def _check_pair(restored: np.ndarray, reference: np.ndarray) -> None:
    if restored.shape != reference.shape:
        raise ValueError(f"shapes differ: {restored.shape} vs {reference.shape}")


def psnr(restored: np.ndarray, reference: np.ndarray, border_px: int = BORDER_PX) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (restored is clipped first).

    Args:
        restored, reference: (H, W, C) float arrays.
    """
    _check_pair(restored, reference)
    diff = _crop(np.clip(restored, 0.0, 1.0), border_px).astype(np.float64) - _crop(
        reference, border_px
    ).astype(np.float64)
    mse = float(np.mean(diff**2))
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _gaussian_valid(maps: np.ndarray) -> np.ndarray:
    """Separable Gaussian filter (11 taps, sigma 1.5) over axes 1 and 2, 'valid' region only.

    Args:
        maps: (M, H, W, C) stack of images filtered alike.

    Returns:
        (M, H - 10, W - 10, C) array.
    """
    taps = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    kernel = np.exp(-(taps**2) / (2 * SSIM_SIGMA**2))
    kernel /= kernel.sum()
    size = len(kernel)
    h, w = maps.shape[1:3]
    rows = np.zeros((maps.shape[0], h - size + 1, w, maps.shape[3]))
    for i in range(size):
        rows += kernel[i] * maps[:, i : h - size + 1 + i]
    out = np.zeros((maps.shape[0], h - size + 1, w - size + 1, maps.shape[3]))
    for i in range(size):
        out += kernel[i] * rows[:, :, i : w - size + 1 + i]
    return out


def ssim(restored: np.ndarray, reference: np.ndarray, border_px: int = BORDER_PX) -> float:
    """Mean structural similarity over channels (restored is clipped to [0, 1] first).

    Args:
        restored, reference: (H, W, C) float arrays.
    """
    _check_pair(restored, reference)
    x = _crop(np.clip(restored, 0.0, 1.0), border_px).astype(np.float64)
    y = _crop(reference, border_px).astype(np.float64)
    if min(x.shape[:2]) < 2 * SSIM_RADIUS + 1:
        raise ValueError(
            f"image {restored.shape[:2]} too small for SSIM: needs {2 * SSIM_RADIUS + 1} px "
            f"beyond the {border_px} px border"
        )
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    mu_x, mu_y, xx, yy, xy = _gaussian_valid(np.stack([x, y, x * x, y * y, x * y]))
    var_x = xx - mu_x**2
    var_y = yy - mu_y**2
    cov = xy - mu_x * mu_y
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return float(index.mean())
