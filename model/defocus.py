"""The defocus front end: estimate the blur, invert it analytically, blend per pixel.

A network that must discover deconvolution from a few ten thousand training patches learns a
weak inverse; defocus has a known form (a disk whose radius varies with depth) and an analytic
inverse per radius (`model.deconvolution.WienerBank`). What is left to learn is the selection:

- `BlurEstimator`, a small convolutional network at 1/4 resolution, reads the blurry image
  beside the bank's candidates (a candidate deconvolved with too large a disk rings, one with
  too small a disk stays soft) and predicts, per pixel, a distribution over the bank's radii
  (radius 0 = in focus) and over its regularisation strengths (how noisy the region is).
  It follows the per-pixel mixtures over a fixed filter bank of GKMNet (NeurIPS 2021) and KPAC
  (ICCV 2021), with the bank made of Wiener inverses as in DWDN (NeurIPS 2020).
- `DefocusFrontEnd` blends the candidates with those weights and reports the expected radius
  per pixel (the defocus map users see) beside the blend the restoration network refines.

On synthetic pairs the estimator is supervised by the radius map the degradation knows
(`radius_loss`) and end to end through the blend. Everything here runs per tile: memory is
bounded by the tile size like the rest of the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import DefocusConfig
from model.deconvolution import WienerBank

# ITU-R BT.601 luma weights: the estimator reads blur from luminance
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class FrontEndOutput:
    """What the front end hands on.

    blend: (B, 3, H, W) the per-pixel blend of the bank's candidates.
    radius_px: (B, 1, H, W) the expected defocus radius in pixels (0 = in focus).
    radius_logits: (B, R, H, W) the estimator's scores over the bank radii (for its loss).
    """

    blend: Tensor
    radius_px: Tensor
    radius_logits: Tensor


def _luma(image: Tensor) -> Tensor:
    """(..., 3, H, W) -> (..., H, W)."""
    r, g, b = image.unbind(-3)
    return LUMA[0] * r + LUMA[1] * g + LUMA[2] * b


class _Residual(nn.Module):
    """Two dilated 3x3 convs with a skip: (B, C, h, w) -> (B, C, h, w)."""

    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.gelu(self.conv1(F.gelu(x))))


class BlurEstimator(nn.Module):
    """Per-pixel scores over the bank's radii and regularisations, predicted at 1/4 resolution.

    Its evidence is how much fine detail each candidate has: deconvolving with too small a disk
    leaves an image about as soft as the input, with the right one restores the detail of a
    natural image, and with too large a disk adds ringing, so the local energy of a candidate's
    Laplacian, seen across the bank's radii, bends where the radius is right; noise lifts it at
    every radius, which tells the regularisation. Inputs, all at 1/4 resolution: for each
    candidate log(mean energy of its luminance Laplacian over 4x4 pixels) minus the same for the
    blurry image (so that contrast cancels), and the blurry luminance itself. Residual blocks
    with growing dilation (1, 2, 4, 8, ...) give a receptive field of about 130 px; a 1x1 head
    gives R + N logits, resized to (H, W).
    """

    laplacian: Tensor  # (1, 1, 3, 3)

    def __init__(self, config: DefocusConfig) -> None:
        super().__init__()
        radii, balances = len(config.radii_px), len(config.balances)
        width = config.estimator_width
        self.stem = nn.Conv2d(1 + radii * balances, width, 3, padding=1)
        self.blocks = nn.Sequential(
            *(_Residual(width, 2 ** (i % 4)) for i in range(config.estimator_blocks))
        )
        self.head = nn.Conv2d(width, radii + balances, 1)
        self.register_buffer(
            "laplacian",
            torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]]).view(1, 1, 3, 3),
            persistent=False,
        )

    def _log_energy(self, luma: Tensor) -> Tensor:
        """(B, K, H, W) -> log mean squared Laplacian per 4x4 cell, (B, K, H/4, W/4) rounded up."""
        B, K, H, W = luma.shape
        flat = luma.reshape(B * K, 1, H, W)
        detail = F.conv2d(F.pad(flat, (1, 1, 1, 1), mode="replicate"), self.laplacian)
        energy = F.avg_pool2d(detail.square(), 4, ceil_mode=True)
        return torch.log(energy + 1e-6).reshape(B, K, *energy.shape[-2:])

    def forward(self, blurry: Tensor, candidates: Tensor) -> tuple[Tensor, Tensor]:
        """Score the candidates.

        Args:
            blurry: (B, 3, H, W) in [0, 1].
            candidates: (B, R, N, 3, H, W) from the bank.

        Returns:
            (radius logits (B, R, H, W), balance logits (B, N, H, W)).
        """
        B, R, N, _, H, W = candidates.shape
        luma = _luma(blurry)[:, None]  # (B, 1, H, W)
        reference = self._log_energy(luma)  # (B, 1, h, w)
        relative = self._log_energy(_luma(candidates).reshape(B, R * N, H, W)) - reference
        pooled = F.avg_pool2d(luma, 4, ceil_mode=True) * 2 - 1  # (B, 1, h, w)
        features = self.blocks(self.stem(torch.cat([pooled, relative], dim=1)))
        logits = F.interpolate(
            self.head(F.gelu(features)), size=(H, W), mode="bilinear", align_corners=False
        )  # (B, R + N, H, W)
        return logits[:, :R], logits[:, R:]


class DefocusFrontEnd(nn.Module):
    """Bank + estimator: blurry (B, 3, H, W) -> `FrontEndOutput`."""

    radii: Tensor  # (1, R, 1, 1) the bank's radii in pixels

    def __init__(self, config: DefocusConfig) -> None:
        super().__init__()
        self.config = config
        self.bank = WienerBank(config.radii_px, config.balances, config.margin_px)
        self.estimator = BlurEstimator(config)
        self.register_buffer(
            "radii", torch.tensor(config.radii_px).view(1, -1, 1, 1), persistent=False
        )  # (1, R, 1, 1)

    def forward(self, blurry: Tensor, radius_px: Tensor | None = None) -> FrontEndOutput:
        """Estimate the blur and blend the bank's candidates by it.

        Args:
            blurry: (B, 3, H, W) in [0, 1].
            radius_px: optional known radius map (B, 1, H, W) that replaces the estimated
                radius weights (the "true map" ablation); the regularisation stays estimated.
        """
        candidates = self.bank(blurry)  # (B, R, N, 3, H, W), float32
        with torch.autocast(blurry.device.type, enabled=False):
            radius_logits, balance_logits = self.estimator(blurry.float(), candidates)
            radius_weights = radius_logits.softmax(dim=1)  # (B, R, H, W)
            if radius_px is not None:
                radius_weights = self.soft_labels(radius_px)
            balance_weights = balance_logits.softmax(dim=1)  # (B, N, H, W)
            weights = radius_weights[:, :, None] * balance_weights[:, None]  # (B, R, N, H, W)
            blend = torch.einsum("brnhw,brnchw->bchw", weights, candidates)
            expected = (radius_weights * self.radii).sum(dim=1, keepdim=True)  # (B, 1, H, W)
        return FrontEndOutput(blend.to(blurry.dtype), expected, radius_logits)

    def soft_labels(self, radius_px: Tensor) -> Tensor:
        """A radius map (B, 1, H, W) as weights over the bank radii (B, R, H, W).

        A radius between two bank radii splits its weight between them linearly; radii beyond
        the bank's range go to its end.
        """
        radii = self.radii.flatten()
        clamped = radius_px.clamp(float(radii[0]), float(radii[-1]))  # (B, 1, H, W)
        upper = torch.searchsorted(radii, clamped.contiguous(), right=False).clamp(
            1, len(radii) - 1
        )
        low, high = radii[upper - 1], radii[upper]
        frac = (clamped - low) / (high - low)  # (B, 1, H, W)
        labels = torch.zeros(
            (radius_px.shape[0], len(radii), *radius_px.shape[-2:]), device=radius_px.device
        )
        labels.scatter_(1, upper - 1, 1 - frac)
        labels.scatter_add_(1, upper, frac)
        return labels


def radius_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of the radius scores (B, R, H, W) against soft labels (B, R, H, W)."""
    return -(labels * logits.log_softmax(dim=1)).sum(dim=1).mean()
