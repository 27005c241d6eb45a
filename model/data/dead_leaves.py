"""Procedural dead-leaves images: free, unlimited training data with exact depth layers.

Achddou et al. 2021, "Synthetic images as a regularity prior for image restoration neural
networks": disks with power-law radii (p(r) ~ r^-alpha, alpha ~ 3) occluding one another reproduce
the scale invariance and edge statistics of natural images. We add what defocus training needs:

* colours sampled from real photos (a palette of pixels), and textured leaves (a grating
  between two palette colours), so the network also sees texture, not only flat regions;
* depth: the leaves are dealt into `num_layers` depth layers; nearer layers are partial, the
  farthest covers the canvas. `model.data.degrade.composite_defocus` blurs each layer by its own
  disk, so occlusion edges between depths blur the way they do through a real lens;
* 2x supersampling: leaves are drawn at twice the size and box-averaged, so edges are
  anti-aliased (alpha takes fractional values).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from model.data.degrade import LayeredScene


@dataclass(frozen=True)
class DeadLeavesSettings:
    """Shape of the generated images."""

    size_px: int = 256  # output side (square)
    alpha: float = 3.0  # power-law exponent of the radius density
    # Smallest leaf radius at output resolution. Covering a canvas takes ~A/(pi E[r^2]) leaves
    # times ln(pixels), and E[r^2] shrinks with r_min: 2 px keeps a 256 px image at ~6k leaves.
    min_radius_px: float = 2.0
    max_radius_px: float = 96.0  # largest leaf radius at output resolution
    num_layers: int = 4  # depth layers (the farthest is the full background)
    leaves_per_layer: int = 60  # leaves dealt to each partial (nearer) layer
    background_leaves: int = 6000  # leaves drawn for the background layer (gaps: one last leaf)
    texture_probability: float = 0.5  # chance a leaf carries a grating texture
    supersample: int = 2  # drawing resolution factor

    def __post_init__(self) -> None:
        if self.size_px < 8 or self.num_layers < 1 or self.supersample < 1:
            raise ValueError(f"invalid dead-leaves settings: {self}")
        if not 0 < self.min_radius_px < self.max_radius_px:
            raise ValueError("need 0 < min_radius_px < max_radius_px")


def sample_radii(
    rng: np.random.Generator, n: int, alpha: float, r_min: float, r_max: float
) -> np.ndarray:
    """Draw `n` radii from p(r) ~ r^-alpha on [r_min, r_max] by inverting the CDF."""
    u = rng.random(n)
    if math.isclose(alpha, 1.0):
        return np.asarray(r_min * (r_max / r_min) ** u)
    e = 1.0 - alpha
    return np.asarray((r_min**e + u * (r_max**e - r_min**e)) ** (1.0 / e))


def _leaf_colours(
    rng: np.random.Generator,
    palette: np.ndarray,
    label: np.ndarray,
    count: int,
    texture_probability: float,
    scale: int,
) -> np.ndarray:
    """Colour every pixel from the leaf that owns it: flat, or a grating between two colours.

    Args:
        label: (S, S) index of the leaf owning each pixel (0..count-1), -1 where none.
        count: number of leaves.
        scale: drawing resolution factor (gratings are specified at output resolution).

    Returns:
        (S, S, 3) float32 colours (0 where no leaf).
    """
    first = palette[rng.integers(len(palette), size=count)]
    second = palette[rng.integers(len(palette), size=count)]
    textured = rng.random(count) < texture_probability
    angle = rng.uniform(0, math.pi, count)
    period = rng.uniform(3.0, 40.0, count)
    phase = rng.uniform(0, 2 * math.pi, count)
    owned = label >= 0
    leaf = label[owned]
    yy, xx = np.nonzero(owned)
    along = (xx * np.cos(angle[leaf]) + yy * np.sin(angle[leaf])) / scale
    wave = 0.5 + 0.5 * np.sin(2 * math.pi * along / period[leaf] + phase[leaf])
    wave = np.where(textured[leaf], wave, 0.0)
    colour = np.zeros((*label.shape, 3), np.float32)
    colour[owned] = first[leaf] + (second[leaf] - first[leaf]) * wave[:, None]
    return colour


def _draw_layer(
    rng: np.random.Generator,
    palette: np.ndarray,
    settings: DeadLeavesSettings,
    size: int,
    num_leaves: int,
    fill: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw leaves; a pixel belongs to the frontmost (first drawn) leaf that covers it.

    Leaves are painted back to front (the painter's algorithm), so each one is a single masked
    assignment of its index; colours are then computed for all pixels at once.

    Args:
        size: canvas side at drawing resolution.
        num_leaves: leaves to draw.
        fill: the background layer: pixels no leaf reached belong to one last, infinite leaf
            (so the layer is opaque everywhere however small the leaves are).

    Returns:
        (colour (size, size, 3) float32, covered (size, size) bool).
    """
    scale = settings.supersample
    radii = scale * sample_radii(
        rng, num_leaves, settings.alpha, settings.min_radius_px, settings.max_radius_px
    )
    centres = rng.uniform(-0.1 * size, 1.1 * size, (num_leaves, 2))
    label = np.full((size, size), num_leaves if fill else -1, np.int64)
    for index in range(num_leaves - 1, -1, -1):
        radius, (cy, cx) = radii[index], centres[index]
        y0, y1 = max(0, int(cy - radius)), min(size, int(cy + radius) + 1)
        x0, x1 = max(0, int(cx - radius)), min(size, int(cx + radius) + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        dy = (np.arange(y0, y1) + 0.5 - cy) ** 2
        dx = (np.arange(x0, x1) + 0.5 - cx) ** 2
        label[y0:y1, x0:x1][dy[:, None] + dx[None, :] <= radius**2] = index
    count = num_leaves + 1 if fill else num_leaves
    colour = _leaf_colours(rng, palette, label, count, settings.texture_probability, scale)
    return colour, label >= 0


def _box_downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """Average non-overlapping factor x factor blocks of an (S, S, ...) array."""
    if factor == 1:
        return image
    s = image.shape[0] // factor
    blocks = image.reshape(s, factor, s, factor, *image.shape[2:])  # (s, f, s, f, ...)
    return blocks.mean(axis=(1, 3))


def dead_leaves(
    rng: np.random.Generator,
    palette: np.ndarray | None = None,
    settings: DeadLeavesSettings | None = None,
) -> LayeredScene:
    """Generate one dead-leaves scene.

    Args:
        rng: the only source of randomness.
        palette: (N, 3) float colours in [0, 1] to draw leaves from (e.g. pixels sampled from
            photos); None = uniform random colours.
        settings: image size and leaf statistics (defaults when None).

    Returns:
        a `LayeredScene` of `settings.num_layers` layers (size_px x size_px), farthest first.
    """
    settings = settings or DeadLeavesSettings()
    if palette is None:
        palette = rng.random((256, 3)).astype(np.float32)
    palette = np.asarray(palette, np.float32)
    if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) == 0:
        raise ValueError(f"palette must be (N, 3) with N > 0, got {palette.shape}")
    size = settings.size_px * settings.supersample
    colours, alphas = [], []
    for layer in range(settings.num_layers):
        is_background = layer == 0
        colour, covered = _draw_layer(
            rng,
            palette,
            settings,
            size,
            settings.background_leaves if is_background else settings.leaves_per_layer,
            fill=is_background,
        )
        coverage = covered.astype(np.float32)
        alpha = _box_downsample(coverage, settings.supersample)
        premultiplied = _box_downsample(colour * coverage[..., None], settings.supersample)
        colours.append(premultiplied / np.maximum(alpha, 1e-6)[..., None])
        alphas.append(alpha)
    depths = np.sort(rng.uniform(0.0, 1.0, settings.num_layers))[::-1].copy()
    return LayeredScene(
        np.clip(np.stack(colours), 0.0, 1.0).astype(np.float32),
        np.stack(alphas).astype(np.float32),
        depths,
    )
