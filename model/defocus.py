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
from model.psf import gaussian_psf

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


def luma(image: Tensor) -> Tensor:
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


def _gaussian_blur(image: Tensor, line: Tensor) -> Tensor:
    """Separable blur of (B, 1, H, W) by the odd 1-D taps `line`, edges replicated."""
    half = line.shape[0] // 2
    padded = F.pad(image, (half, half, half, half), mode="replicate")
    rows = F.conv2d(padded, line.view(1, 1, 1, -1))
    return F.conv2d(rows, line.view(1, 1, -1, 1))


def laplacian(image: Tensor) -> Tensor:
    """The discrete Laplacian (`model.deconvolution.LAPLACIAN_TAPS`) of every (H, W) plane of
    (..., H, W), edges replicated, as shifted differences: 3x faster on the CPU than a
    one-channel convolution over the 24 candidates of a tile batch. The differences go into one
    buffer in place (no backward needs its intermediate values), which spares four plane-sized
    allocations: 23 against 32 ms for 96 planes of 256 px."""
    lead = image.shape[:-2]
    padded = F.pad(image.reshape(-1, 1, *image.shape[-2:]), (1, 1, 1, 1), mode="replicate")
    detail = padded[..., 1:-1, 1:-1] * 4
    detail -= padded[..., :-2, 1:-1]
    detail -= padded[..., 2:, 1:-1]
    detail -= padded[..., 1:-1, :-2]
    detail -= padded[..., 1:-1, 2:]
    return detail.reshape(*lead, *image.shape[-2:])


def _gradient_magnitude(image: Tensor) -> Tensor:
    """|grad| of (B, 1, H, W) by central differences, edges replicated: (B, 1, H, W)."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    gx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
    gy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
    return torch.sqrt(gx.square() + gy.square() + 1e-8)


class ImageContext(nn.Module):
    """Adds one vector per image to every cell's features: evidence pooled over the image.

    The dilated blocks see about 130 px around a cell, so where a region has few edges its
    reading rests on little evidence, even when the rest of the image is blurred alike (one
    depth, or a photo shot wide open at a distant subject). A learned 1x1 score says how much
    each cell's features are worth (edges more than flat sky); their softmax-weighted mean over
    the image, through a small MLP, shifts every cell's features. The MLP's last layer starts
    at zero, so an estimator grown with a context scores exactly as it did before it.
    Under tiled inference "the image" is the tile (256 px by default).
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.score = nn.Conv2d(width, 1, 1)
        self.hidden = nn.Linear(width, width)
        self.output = nn.Linear(width, width)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def forward(self, features: Tensor) -> Tensor:
        """(B, C, h, w) -> (B, C, h, w): the features plus the image's pooled evidence."""
        attention = self.score(features).flatten(2).softmax(dim=-1)  # (B, 1, h w)
        pooled = (features.flatten(2) * attention).sum(dim=-1)  # (B, C)
        shift = self.output(F.gelu(self.hidden(pooled)))  # (B, C)
        return features + shift[:, :, None, None]


class BlurEstimator(nn.Module):
    """Per-pixel scores over the bank's radii and regularisations, predicted at 1/4 resolution.

    Two cues, both computed on luminance and pooled to 4x4 cells:

    - Gradient ratios (Zhuo & Sim, "Defocus map estimation from a single image", 2011): re-blur
      the image with a Gaussian of sigma_0 (each of `DefocusConfig.reblur_sigmas_px`); at an
      edge blurred by sigma, the ratio of gradient magnitudes before and after is
      sqrt(sigma^2 + sigma_0^2) / sigma, a closed-form reading of the blur that is sharpest at
      edges and flattens towards 1 once sigma >> sigma_0 (hence several widths). Cells average
      the log-ratio weighted by gradient energy, beside the log of that energy (how much edge a
      cell has to go by).
    - The bank's own verdict: a candidate deconvolved with too small a disk stays about as soft
      as the input, with the right one restores natural detail, with too large a disk rings; so
      log(mean energy of a candidate's Laplacian) minus the same for the input, across radii,
      bends at the right radius, and noise lifts it everywhere (which tells the regularisation).

    Residual blocks with growing dilation (1, 2, 4, 8, ...) carry evidence from edges into flat
    regions over about 130 px; with `DefocusConfig.estimator_context` an `ImageContext` then adds
    what the whole image (tile) says; a 1x1 head gives R + N logits, resized to (H, W).
    """

    def __init__(self, config: DefocusConfig) -> None:
        super().__init__()
        # the re-blur kernels' 1-D taps, built once (derived tables, never stored)
        self.reblur_count = len(config.reblur_sigmas_px)
        for index, sigma in enumerate(config.reblur_sigmas_px):
            taps = torch.from_numpy(gaussian_psf(sigma).sum(axis=0))
            self.register_buffer(f"reblur{index}", taps, persistent=False)
        radii, balances = len(config.radii_px), len(config.balances)
        width = config.estimator_width
        cues = 2 + self.reblur_count + radii * balances
        self.stem = nn.Conv2d(cues, width, 3, padding=1)
        self.blocks = nn.Sequential(
            *(_Residual(width, 2 ** (i % 4)) for i in range(config.estimator_blocks))
        )
        self.context = ImageContext(width) if config.estimator_context else None
        self.head = nn.Conv2d(width, radii + balances, 1)

    def _log_energy(self, luma: Tensor) -> Tensor:
        """(B, K, H, W) -> log mean squared Laplacian per 4x4 cell, (B, K, H/4, W/4) rounded up."""
        energy = F.avg_pool2d(laplacian(luma).square(), 4, ceil_mode=True)
        return torch.log(energy + 1e-6)

    def gradient_ratios(self, grey: Tensor) -> Tensor:
        """(B, 1, H, W) -> log edge energy and energy-weighted log gradient ratios per cell."""
        gradient = _gradient_magnitude(grey)
        weight = gradient.square()
        pooled_weight = F.avg_pool2d(weight, 4, ceil_mode=True) + 1e-8  # (B, 1, h, w)
        cues = [torch.log(pooled_weight)]
        for index in range(self.reblur_count):
            reblurred = _gaussian_blur(grey, getattr(self, f"reblur{index}"))
            ratio = torch.log(gradient) - torch.log(_gradient_magnitude(reblurred))
            cues.append(F.avg_pool2d(ratio * weight, 4, ceil_mode=True) / pooled_weight)
        return torch.cat(cues, dim=1)  # (B, 1 + reblur_count, h, w)

    def forward(self, blurry: Tensor, candidate_luma: Tensor) -> tuple[Tensor, Tensor]:
        """Score the candidates.

        Args:
            blurry: (B, 3, H, W) in [0, 1].
            candidate_luma: (B, R, N, H, W) the luminance of the bank's candidates, which is
                the bank applied to the luminance (every step of the bank is linear).

        Returns:
            (radius logits (B, R, H, W), balance logits (B, N, H, W)).
        """
        B, R, N, H, W = candidate_luma.shape
        grey = luma(blurry)[:, None]  # (B, 1, H, W)
        reference = self._log_energy(grey)  # (B, 1, h, w)
        relative = self._log_energy(candidate_luma.reshape(B, R * N, H, W)) - reference
        pooled = F.avg_pool2d(grey, 4, ceil_mode=True) * 2 - 1  # (B, 1, h, w)
        cues = torch.cat([pooled, self.gradient_ratios(grey), relative], dim=1)
        features = self.blocks(self.stem(cues))
        if self.context is not None:
            features = self.context(features)
        logits = F.interpolate(
            self.head(F.gelu(features)), size=(H, W), mode="bilinear", align_corners=False
        )  # (B, R + N, H, W)
        return logits[:, :R], logits[:, R:]


def weighted_sum(weights: Tensor, candidates: Tensor) -> Tensor:
    """Per-pixel blend of the candidates: sum over (r, n) of weights * candidates.

    Accumulated one candidate at a time (fused multiply-add in place): an einsum over the
    same shapes lowers to a batched matmul with (H, W) as batch and copies both operands into
    that layout, about 20 times slower on the CPU (218 vs 11 ms for 4 tiles of 256 px).

    Args:
        weights: (B, R, N, H, W).
        candidates: (B, R, N, C, H, W).

    Returns:
        (B, C, H, W).
    """
    B, R, N, C, H, W = candidates.shape
    flat_weights = weights.reshape(B, R * N, 1, H, W)
    flat_candidates = candidates.reshape(B, R * N, C, H, W)
    blend = flat_weights[:, 0] * flat_candidates[:, 0]  # (B, C, H, W)
    for k in range(1, R * N):
        blend = blend.addcmul(flat_weights[:, k], flat_candidates[:, k])
    return blend


def rgb_from_luma(luma_plane: Tensor, red_blue: Tensor) -> Tensor:
    """RGB (B, 3, H, W) from luminance (B, 1, H, W) and the red and blue planes (B, 2, H, W):
    green is what `LUMA` leaves of the luminance."""
    red, blue = red_blue[:, :1], red_blue[:, 1:]
    green = (luma_plane - LUMA[0] * red - LUMA[2] * blue) / LUMA[1]
    return torch.cat([red, green, blue], dim=1)


# At inference, a candidate whose weight stays below this at every pixel of an image (tile) is
# neither computed for its colour nor blended: it could move no pixel by more than this share of
# its value. The shipped lite-defocus estimator spreads its radius weights over every radius
# but hardly uses its weaker regularisation, so tiles keep about half of the 24 candidates
# (docs/defocus.md, "Cost"). On CUDA each skip decision is a host sync (at most R + R N per
# batch of tiles).
SKIP_WEIGHT = 1e-3


class DefocusFrontEnd(nn.Module):
    """Bank + estimator: blurry (B, 3, H, W) -> `FrontEndOutput`.

    The estimator reads only the candidates' luminance, so the bank first runs on the luminance
    alone (every candidate). The blend then needs two more planes, red and blue (green follows
    from the luminance), and at inference only for the candidates an image weights at least
    `skip_weight` somewhere; the weights of the others are dropped and the rest renormalised.
    Under autograd every candidate is kept, so training sees the exact blend.

    Args:
        config: the bank and the estimator.
        skip_weight: see `SKIP_WEIGHT`; 0 keeps every candidate.
    """

    radii: Tensor  # (1, R, 1, 1) the bank's radii in pixels

    def __init__(self, config: DefocusConfig, skip_weight: float = SKIP_WEIGHT) -> None:
        super().__init__()
        self.config = config
        # every pixel's largest weight is at least 1 / (R N): it must stay kept
        if not 0.0 <= skip_weight < 1.0 / (len(config.radii_px) * len(config.balances)):
            raise ValueError(f"skip_weight must be in [0, 1 / (R N)), got {skip_weight}")
        self.skip_weight = skip_weight
        self.bank = WienerBank(config.radii_px, config.balances, config.margin_px)
        self.estimator = BlurEstimator(config)
        self.register_buffer(
            "radii", torch.tensor(config.radii_px).view(1, -1, 1, 1), persistent=False
        )  # (1, R, 1, 1)

    def forward(
        self,
        blurry: Tensor,
        radius_px: Tensor | None = None,
        use_map: Tensor | None = None,
        radius_evidence: Tensor | None = None,
    ) -> FrontEndOutput:
        """Estimate the blur and blend the bank's candidates by it.

        Args:
            blurry: (B, 3, H, W) in [0, 1].
            radius_px: optional known radius map (B, 1, H, W) that replaces the estimated
                radius weights (the "true map" ablation); the regularisation stays estimated.
            use_map: (B,) bool, which images take `radius_px` (None: all of them); the others
                keep the estimate. Training feeds some images the blend a perfect estimator
                would give, so the network learns to trust a correct blend.
            radius_evidence: optional (B, R, H, W) log-likelihood of each bank radius from
                another source (`model.reblur`), added to the estimator's scores before the
                softmax: the estimate updated by the evidence, unchanged where it is flat.
        """
        with torch.autocast(blurry.device.type, enabled=False):
            image = blurry.float()
            grey = luma(image)[:, None]  # (B, 1, H, W)
            candidate_luma = self.bank(grey)[:, :, :, 0]  # (B, R, N, H, W)
            radius_logits, balance_logits = self.estimator(image, candidate_luma)
            radius_weights = self.radius_weights(radius_logits, radius_evidence)  # (B, R, H, W)
            if radius_px is not None:
                labels = self.soft_labels(radius_px)
                if use_map is None:
                    radius_weights = labels
                else:
                    radius_weights = torch.where(use_map.view(-1, 1, 1, 1), labels, radius_weights)
            balance_weights = balance_logits.softmax(dim=1)  # (B, N, H, W)
            blend = self.blend(image, candidate_luma, radius_weights, balance_weights)
            expected = self.expected_radius(radius_weights)
        return FrontEndOutput(blend.to(blurry.dtype), expected, radius_logits)

    def expected_radius(self, radius_weights: Tensor) -> Tensor:
        """The radius map (B, 1, H, W) in px that weights over the bank radii (B, R, H, W) stand
        for: their weighted mean (a true map's soft labels give the map back)."""
        return (radius_weights * self.radii).sum(dim=1, keepdim=True)  # (B, 1, H, W)

    def blend(
        self,
        image: Tensor,
        candidate_luma: Tensor,
        radius_weights: Tensor,
        balance_weights: Tensor,
    ) -> Tensor:
        """The bank's candidates blended per pixel: (B, 3, H, W) float32.

        Args:
            image: (B, 3, H, W) float32, the blurry image.
            candidate_luma: (B, R, N, H, W) the bank's candidates of its luminance.
            radius_weights: (B, R, H, W) each bank radius's weight per pixel.
            balance_weights: (B, N, H, W) each regularisation's weight per pixel.
        """
        weights = radius_weights[:, :, None] * balance_weights[:, None]  # (B, R, N, H, W)
        keep = torch.ones(weights.shape[:3], dtype=torch.bool, device=weights.device)
        if self.skip_weight > 0 and not torch.is_grad_enabled():
            keep = self.kept(weights)
            weights = weights * keep[..., None, None]
            weights = weights / weights.sum(dim=(1, 2), keepdim=True)
        luma_blend = weighted_sum(weights, candidate_luma[:, :, :, None])  # (B, 1, H, W)
        return rgb_from_luma(luma_blend, self.bank.blend(image[:, 0::2], weights, keep))

    def radius_weights(self, radius_logits: Tensor, evidence: Tensor | None = None) -> Tensor:
        """The blend's weights over the bank radii (B, R, H, W) from the estimator's scores:
        a softmax at the config's `radius_temperature`, after adding `evidence` (log-likelihoods
        of the radii, (B, R, H, W)) where given."""
        scores = radius_logits / self.config.radius_temperature
        return (scores if evidence is None else scores + evidence).softmax(dim=1)

    def kept(self, weights: Tensor) -> Tensor:
        """(B, R, N) bool: the candidates each image weights at least `skip_weight` somewhere,
        of the per-pixel weights (B, R, N, H, W); what inference computes in colour."""
        return weights.amax(dim=(-2, -1)) >= self.skip_weight

    def uniform(self, blurry: Tensor) -> FrontEndOutput:
        """The bank without the estimator: every candidate weighted equally (an ablation)."""
        candidates = self.bank(blurry)  # (B, R, N, 3, H, W)
        B, R, _, _, H, W = candidates.shape
        logits = torch.zeros(B, R, H, W, device=blurry.device)
        expected = self.radii.mean(dim=1, keepdim=True).expand(B, 1, H, W)
        return FrontEndOutput(candidates.mean(dim=(1, 2)).to(blurry.dtype), expected, logits)

    def soft_labels(self, radius_px: Tensor) -> Tensor:
        """A radius map (B, 1, H, W) as weights over the bank radii (B, R, H, W)
        (`linear_labels` on the bank's radii)."""
        return linear_labels(radius_px, self.radii.flatten())


def linear_labels(radius_px: Tensor, grid: Tensor) -> Tensor:
    """A radius map (B, 1, H, W) as weights over the radii of `grid` (G,), ascending, G >= 2:
    (B, G, H, W).

    A radius between two grid radii splits its weight between them linearly, so the weighted
    mean of the grid is the radius itself; radii beyond the grid's range go to its end.
    """
    clamped = radius_px.clamp(float(grid[0]), float(grid[-1]))  # (B, 1, H, W)
    upper = torch.searchsorted(grid, clamped.contiguous(), right=False).clamp(1, len(grid) - 1)
    low, high = grid[upper - 1], grid[upper]
    frac = (clamped - low) / (high - low)  # (B, 1, H, W)
    labels = torch.zeros(
        (radius_px.shape[0], len(grid), *radius_px.shape[-2:]),
        device=radius_px.device,
        dtype=frac.dtype,
    )
    labels.scatter_(1, upper - 1, 1 - frac)
    labels.scatter_add_(1, upper, frac)
    return labels


def radius_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of the radius scores (B, R, H, W) against soft labels (B, R, H, W)."""
    return -(labels * logits.log_softmax(dim=1)).sum(dim=1).mean()
