"""Blur refinement by re-blur consistency: evidence on the blur radius from a first restoration.

The blur estimator reads the radius from the blurry image alone, and reads it 20-60 % off
(weights/LITE_DEFOCUS_CARD.md: 0.76 px mean absolute on the evaluation's 1.5-6 px disks), while
deconvolution approaches the oracle only within about 5 % ("Where the rest of the gap is").
A first restoration x is sharp enough to measure the radius another way: blurring x with the
right disk D_r gives back the input y, blurring it with a wrong one does not.

Per cell of `CELL_PX` (the estimator's resolution) and bank radius r:

    E_r = mean over a window of (D_r * luma(x) - luma(y))^2
    log L(r) = -sharpness * (E_r - min E) / (min E + floor)

`DefocusFrontEnd` adds log L to the estimator's radius scores before their softmax: the
estimate updated by the evidence, a Bayesian update. Where the window has no texture every E_r
is alike and the blend is exactly the first pass's. The cost is normalised by the best fit's
residual, so noise and the first restoration's own errors (which raise every E_r alike) do not
make the evidence look surer.

Where the blur is large the first restoration keeps some of it, and a smaller disk re-blurs it
into the input best: on training-like pairs at 10 px the best disk was about 5 px (see the
card). So the evidence only tells radii apart below `RELIABLE_BELOW_PX`; from there up every
radius gets the same (best) residual, and the estimator alone chooses among them.
Everything runs in float32, outside autocast (the FFTs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from model.deconvolution import centred_spectrum, disk_stack, symmetric_pad
from model.defocus import luma
from model.psf import fast_fft_length

# Whether the deployed path refines the blur where the model estimates it: the service's
# default (service.config.Settings.refine_blur; a worker test checks that both agree) and
# `swintormer eval`'s.
REFINE_BY_DEFAULT = False
CELL_PX = 4  # the evidence's resolution, the estimator's
# The three below were chosen on training-like pairs, never the evaluation photos
# (bench/blur_refinement.py; the table is in the model card).
WINDOW_CELLS = 7  # residuals are averaged over 7 x 7 cells (28 px) around each cell
SHARPNESS = 0.5  # weight of the residuals against the estimator's scores
RELIABLE_BELOW_PX = 5.2  # the evidence does not tell radii from here up apart
FLOOR = (1.0 / 255.0) ** 2 / 12.0  # 8-bit quantisation noise: no window fits better than this


def cell_energies(restored: Tensor, blurry: Tensor, radii_px: Sequence[float]) -> Tensor:
    """Mean squared residual of re-blurring per `CELL_PX` cell and radius, (B, R, h, w) with
    h = ceil(H/4), w = ceil(W/4).

    Args:
        restored: (B, 3, H, W) the first restoration.
        blurry: (B, 3, H, W) the input.
        radii_px: the disks to try.
    """
    with torch.autocast(blurry.device.type, enabled=False):
        sharp = luma(restored.float().clamp(0.0, 1.0))[:, None]  # (B, 1, H, W)
        target = luma(blurry.float())[:, None]  # (B, 1, H, W)
        H, W = target.shape[-2:]
        margin = math.ceil(max(radii_px)) + 2
        shape = (fast_fft_length(H + 2 * margin), fast_fft_length(W + 2 * margin))
        padded = symmetric_pad(
            sharp, margin, shape[0] - H - margin, margin, shape[1] - W - margin
        )  # (B, 1, H', W')
        spectrum = torch.fft.rfft2(padded)  # (B, 1, H', W'//2+1)
        energies = []
        for kernel in disk_stack(radii_px).to(blurry.device):  # (k, k) each
            reblurred = torch.fft.irfft2(spectrum * centred_spectrum(kernel, shape), s=shape)
            residual = reblurred[..., margin : margin + H, margin : margin + W] - target
            energies.append(F.avg_pool2d(residual.square(), CELL_PX, ceil_mode=True))
        return torch.cat(energies, dim=1)  # (B, R, h, w)


def window_mean(cells: Tensor, window_cells: int) -> Tensor:
    """Mean of (B, R, h, w) cell energies over a window of `window_cells` (odd) around each cell,
    the window cut at the borders."""
    return F.avg_pool2d(
        cells, window_cells, stride=1, padding=window_cells // 2, count_include_pad=False
    )


def reblur_energies(
    restored: Tensor, blurry: Tensor, radii_px: Sequence[float], window_cells: int = WINDOW_CELLS
) -> Tensor:
    """Local mean squared residual of re-blurring, per radius: (B, R, ceil(H/4), ceil(W/4)).

    Args:
        restored: (B, 3, H, W) the first restoration.
        blurry: (B, 3, H, W) the input.
        radii_px: the disks to try.
        window_cells: the averaging window's side, in cells (odd).
    """
    return window_mean(cell_energies(restored, blurry, radii_px), window_cells)


def merge_unreliable(
    energies: Tensor, radii_px: Sequence[float], reliable_below_px: float = RELIABLE_BELOW_PX
) -> Tensor:
    """(B, R, h, w) energies with every radius from `reliable_below_px` up given the best
    residual among them, so that the evidence does not tell them apart."""
    large = torch.tensor(radii_px, device=energies.device) >= reliable_below_px  # (R,)
    if not bool(large.any()):
        return energies
    best_large = energies[:, large].amin(dim=1, keepdim=True)  # (B, 1, h, w)
    return torch.where(large.view(1, -1, 1, 1), best_large, energies)


def relative_cost(energies: Tensor) -> Tensor:
    """(B, R, h, w) residuals as (E_r - min E) / (min E + FLOOR): 0 at the best fit, and not
    surer where noise or the first restoration's own errors raise every E_r alike."""
    best = energies.amin(dim=1, keepdim=True)  # (B, 1, h, w)
    return (energies - best) / (best + FLOOR)


def as_log_likelihood(cost: Tensor, image: Tensor) -> Tensor:
    """Per-cell costs (B, R, h, w) as the log-likelihood the front end adds at the size of
    `image` (B, C, H, W): (B, R, H, W)."""
    return -F.interpolate(cost, size=image.shape[-2:], mode="bilinear", align_corners=False)


def radius_evidence(
    restored: Tensor,
    blurry: Tensor,
    radii_px: Sequence[float],
    sharpness: float = SHARPNESS,
    window_cells: int = WINDOW_CELLS,
    reliable_below_px: float = RELIABLE_BELOW_PX,
) -> Tensor:
    """Log-likelihood (B, R, H, W) of each radius of `radii_px` from re-blurring `restored`.

    Args:
        restored: (B, 3, H, W) the first pass's restoration.
        blurry: (B, 3, H, W) the input, in [0, 1].
        radii_px: the bank's radii, ascending.
        sharpness: weight of the residuals (0: no evidence).
        window_cells: see `WINDOW_CELLS`.
        reliable_below_px: see `RELIABLE_BELOW_PX`.
    """
    with torch.autocast(blurry.device.type, enabled=False):
        energies = reblur_energies(restored, blurry, radii_px, window_cells)  # (B, R, h, w)
        cost = relative_cost(merge_unreliable(energies, radii_px, reliable_below_px))
        return as_log_likelihood(sharpness * cost, blurry)
