"""Defocus blur synthesis: the degradation the network learns to undo.

A thin lens images a point at depth d as a disk whose radius grows with |d - d_focus|
(the circle of confusion). We model that directly:

* `disk_psf`: an anti-aliased disk (each tap is the fraction of its pixel the disk covers).
* `dual_pixel_psfs`: the two half-aperture views of a dual-pixel sensor. Each is the disk
  weighted by a linear ramp across x, so left + right = the full disk; behind the focal plane
  the left view sees the left half, in front of it the halves swap (Abuolaim & Brown 2020, DPDD).
* `composite_defocus`: spatially varying blur from layered depth. Layers are composited back to
  front, each blurred with its own disk (premultiplied colour and alpha blurred alike), which
  gives the correct blurred occlusion edges a single depth-map convolution would not.
* `BlurDistribution`: radii matched to DPDD. At ~1 MP the blur in DPDD runs 0.5-8 px with a
  median around 3 px, and every image keeps some in-focus area; we sample the image's largest
  radius from a clipped log-normal and spread the layers between in focus and that radius.
  `python -m bench.blur_radii` prints the per-pixel statistics this produces.
* Sensor effects: Gaussian noise, 8-bit quantisation, optional JPEG.

All randomness comes from an explicit `numpy.random.Generator`; images are float32 (H, W, C)
arrays in [0, 1].
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

# Sub-samples per pixel side when integrating the disk over a pixel (anti-aliasing).
PSF_SUPERSAMPLE = 16
# Radii below this are a point: the disk lies inside the centre pixel and covers none of its
# sub-samples (the nearest sits sqrt(2) / (2 * PSF_SUPERSAMPLE) = 0.044 px from the centre).
POINT_RADIUS_PX = 0.05


def _disk_grid(radius_px: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    _, _, inside = _disk_grid(radius_px)
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
    x, _, inside = _disk_grid(radius)
    # A linear ramp across the aperture: the left photodiode collects light from the left half.
    ramp = np.clip(0.5 - x / (2.0 * radius), 0.0, 1.0)
    left = (inside * ramp).mean(axis=(2, 3))
    right = (inside * (1.0 - ramp)).mean(axis=(2, 3))
    if signed_radius_px < 0:
        left, right = right, left
    return (left / left.sum()).astype(np.float32), (right / right.sum()).astype(np.float32)


def fast_fft_size(n: int) -> int:
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


def reflect_pad_planar(image: np.ndarray, margin: int) -> np.ndarray:
    """Channel-first copy of an (H, W) or (H, W, C) image, reflect-padded for the FFT.

    `margin` pixels go on every side; the bottom and right get a few more so both padded
    sides are fast FFT lengths. The image starts at (margin, margin).

    Returns:
        (C, H', W') float64 array (C = 1 for a 2-D input).
    """
    planar = image[None] if image.ndim == 2 else np.moveaxis(image, 2, 0)
    h, w = planar.shape[1:]
    extra_h = fast_fft_size(h + 2 * margin) - h - margin
    extra_w = fast_fft_size(w + 2 * margin) - w - margin
    widths = ((0, 0), (margin, extra_h), (margin, extra_w))
    return np.pad(planar.astype(np.float64), widths, mode="symmetric")


def transfer_function(psf: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """rfft2 of `psf` centred on the origin of a `shape` grid (the optical transfer function).

    Args:
        psf: (k, k) kernel with odd k.

    Returns:
        (shape[0], shape[1] // 2 + 1) complex array.
    """
    if psf.ndim != 2 or psf.shape[0] != psf.shape[1] or psf.shape[0] % 2 == 0:
        raise ValueError(f"psf must be a square kernel of odd size, got shape {psf.shape}")
    half = psf.shape[0] // 2
    kernel = np.zeros(shape, np.float64)
    kernel[: psf.shape[0], : psf.shape[1]] = psf
    return np.fft.rfft2(np.roll(kernel, (-half, -half), axis=(0, 1)))


def crop_planar(planar: np.ndarray, margin: int, like: np.ndarray) -> np.ndarray:
    """Undo `reflect_pad_planar`: the (H, W[, C]) float32 window shaped like `like`."""
    h, w = like.shape[:2]
    window = planar[:, margin : margin + h, margin : margin + w]
    out = window[0] if like.ndim == 2 else np.moveaxis(window, 0, 2)
    return np.ascontiguousarray(out, dtype=np.float32)


def convolve(image: np.ndarray, psf: np.ndarray) -> np.ndarray:
    """Convolve every channel with `psf`, reflecting the image at its borders.

    Args:
        image: (H, W) or (H, W, C) float array.
        psf: (k, k) kernel with odd k.

    Returns:
        float32 array of `image`'s shape.
    """
    if psf.shape == (1, 1):
        return (image * float(psf[0, 0])).astype(np.float32)
    margin = psf.shape[0] // 2
    padded = reflect_pad_planar(image, margin)
    otf = transfer_function(psf, padded.shape[1:])
    blurred = np.fft.irfft2(np.fft.rfft2(padded) * otf, s=padded.shape[1:])
    return crop_planar(blurred, margin, image)


@dataclass(frozen=True)
class LayeredScene:
    """An image as depth layers, farthest first.

    colours: (K, H, W, 3) float32 in [0, 1]; each layer's colour where its alpha is > 0.
    alphas: (K, H, W) float32 coverage; the farthest layer covers everything (alpha 1).
    depths: (K,) float, decreasing (farthest first), in [0, 1].
    """

    colours: np.ndarray
    alphas: np.ndarray
    depths: np.ndarray

    def __post_init__(self) -> None:
        k = self.colours.shape[0]
        if self.colours.ndim != 4 or self.colours.shape[3] != 3:
            raise ValueError(f"colours must be (K, H, W, 3), got {self.colours.shape}")
        if self.alphas.shape != self.colours.shape[:3] or self.depths.shape != (k,):
            raise ValueError(
                f"alphas {self.alphas.shape} / depths {self.depths.shape} do not match "
                f"colours {self.colours.shape}"
            )


def composite_defocus(scene: LayeredScene, psfs: Sequence[np.ndarray]) -> np.ndarray:
    """Composite the layers back to front, each blurred by its own kernel.

    Args:
        scene: K layers, farthest first.
        psfs: K kernels, one a layer (a (1, 1) identity kernel keeps a layer sharp).

    Returns:
        (H, W, 3) float32 image.
    """
    if len(psfs) != scene.colours.shape[0]:
        raise ValueError(f"need one psf per layer: {len(psfs)} for {scene.colours.shape[0]}")
    out: np.ndarray = np.zeros(scene.colours.shape[1:], np.float32)
    for colour, alpha, psf in zip(scene.colours, scene.alphas, psfs, strict=True):
        premultiplied = convolve(colour * alpha[..., None], psf)
        coverage = convolve(alpha, psf)[..., None]
        out = premultiplied + (1.0 - coverage) * out
    return np.clip(out, 0.0, 1.0)


@dataclass(frozen=True)
class BlurDistribution:
    """How large the defocus is: the largest radius in an image, then one radius a layer.

    Defaults match DPDD at ~1 MP (radii 0.5-8 px, median ~3 px, in-focus areas present).
    """

    max_radius_median_px: float = 5.5  # median of the image's largest radius
    max_radius_log_sigma: float = 0.5  # spread of log(largest radius)
    min_px: float = 0.5  # smallest largest-radius drawn (blur always present somewhere)
    max_px: float = 8.0  # cap on any radius
    scale: float = 1.0  # multiply radii (e.g. 2.0 for images at twice the 1 MP scale)

    def sample_max_radius(self, rng: np.random.Generator) -> float:
        """The image's largest circle-of-confusion radius in pixels."""
        log_r = rng.normal(math.log(self.max_radius_median_px), self.max_radius_log_sigma)
        return float(np.clip(math.exp(log_r), self.min_px, self.max_px) * self.scale)

    def layer_radii(self, depths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Signed radius for each layer depth (positive behind the focal plane).

        A focal depth is drawn uniformly within the scene's depth range, so one region is
        close to focus and blur grows linearly with the depth distance from it.

        Args:
            depths: (K,) layer depths in [0, 1].

        Returns:
            (K,) float64 signed radii in pixels; the largest |radius| is the sampled maximum.
        """
        focus = rng.uniform(float(depths.min()), float(depths.max()))
        offset = depths - focus
        spread = float(np.abs(offset).max())
        if spread == 0.0:
            return np.zeros_like(depths, dtype=np.float64)
        return offset / spread * self.sample_max_radius(rng)


def add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise of standard deviation `sigma` (image units), no clipping."""
    if sigma < 0:
        raise ValueError(f"noise sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return image.astype(np.float32)
    return (image + rng.normal(0.0, sigma, image.shape)).astype(np.float32)


def quantise_8bit(image: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and round to the 256 levels an 8-bit file holds."""
    return (np.round(np.clip(image, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Encode an (H, W, 3) image as JPEG at `quality` (1-95) and decode it again."""
    if not 1 <= quality <= 95:
        raise ValueError(f"JPEG quality must be in 1..95, got {quality}")
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), np.float32) / 255.0


@dataclass(frozen=True)
class SensorModel:
    """What happens after the lens: noise, 8-bit storage, optional JPEG."""

    noise_sigma_max: float = 0.02  # noise sigma drawn uniformly from [0, this]
    jpeg_probability: float = 0.0  # chance an image is stored as JPEG
    jpeg_quality_min: int = 70
    jpeg_quality_max: int = 95

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noise, quantisation and (with `jpeg_probability`) a JPEG round trip.

        Args:
            image: (H, W, C) float32 with C a multiple of 3 (dual-pixel views stacked).
        """
        noisy = quantise_8bit(add_noise(image, rng.uniform(0.0, self.noise_sigma_max), rng))
        if rng.random() >= self.jpeg_probability:
            return noisy
        quality = int(rng.integers(self.jpeg_quality_min, self.jpeg_quality_max + 1))
        views = [
            jpeg_roundtrip(noisy[..., c : c + 3], quality) for c in range(0, noisy.shape[2], 3)
        ]
        return np.concatenate(views, axis=2)


@dataclass(frozen=True)
class DegradedPair:
    """A training or evaluation example.

    sharp: (H, W, 3) float32 target. blurry: (H, W, 3) float32 input (the combined view).
    dual_pixel: (H, W, 6) float32 left and right views stacked, or None.
    radii_px: (K,) signed radius of each layer.
    """

    sharp: np.ndarray
    blurry: np.ndarray
    dual_pixel: np.ndarray | None
    radii_px: np.ndarray


def degrade_scene(
    scene: LayeredScene,
    rng: np.random.Generator,
    blur: BlurDistribution,
    sensor: SensorModel,
    use_dual_pixel: bool = False,
) -> DegradedPair:
    """Defocus a layered scene with DPDD-like radii, then apply the sensor model.

    The sharp target is the same composite with every layer in focus. With `use_dual_pixel`
    the left and right views are rendered with half-aperture kernels and the combined input
    is their mean (what a dual-pixel camera saves as the ordinary image).
    """
    radii = blur.layer_radii(scene.depths, rng)
    sharp = composite_defocus(scene, [disk_psf(0.0)] * len(radii))
    if not use_dual_pixel:
        blurry = composite_defocus(scene, [disk_psf(abs(float(r))) for r in radii])
        return DegradedPair(sharp, sensor.apply(blurry, rng), None, radii)
    kernels = [dual_pixel_psfs(float(r)) for r in radii]
    left = composite_defocus(scene, [k[0] for k in kernels])
    right = composite_defocus(scene, [k[1] for k in kernels])
    views = sensor.apply(np.concatenate([left, right], axis=2), rng)
    combined = quantise_8bit(0.5 * (views[..., :3] + views[..., 3:]))
    return DegradedPair(sharp, combined, views, radii)


def photo_scene(photo: np.ndarray, rng: np.random.Generator, num_layers: int = 4) -> LayeredScene:
    """Split a photograph into depth layers along a smooth random depth field.

    Photos carry no depth, so we give them a plausible one: a random tilt (ground planes
    recede upwards more often than not) plus low-frequency bumps, cut into `num_layers`
    bands. Every layer's colour is the photo itself, so blurred borders never show black.

    Args:
        photo: (H, W, 3) float32 in [0, 1].

    Returns:
        a scene of `num_layers` layers, the farthest covering the whole image.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    h, w = photo.shape[:2]
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    tilt = rng.normal(0.0, 0.3, 2) + np.array([-0.5, 0.0])
    depth = tilt[0] * yy + tilt[1] * xx
    coarse = rng.normal(0.0, 0.5, (4, 4))
    # Bilinear upsampling of a 4x4 random grid: smooth bumps on the tilted plane.
    ys, xs = np.linspace(0, 3, h), np.linspace(0, 3, w)
    rows = np.stack([np.interp(xs, np.arange(4), coarse[i]) for i in range(4)])  # (4, W)
    depth = depth + np.stack([np.interp(ys, np.arange(4), rows[:, j]) for j in range(w)], axis=1)
    edges = np.quantile(depth, np.linspace(0, 1, num_layers + 1)[1:-1])
    band = np.digitize(depth, edges)  # 0 = nearest quantile band ... K-1 = farthest
    band = num_layers - 1 - band  # farthest first
    alphas = np.stack([(band >= 0) if k == 0 else (band == k) for k in range(num_layers)])
    colours = np.broadcast_to(photo, (num_layers, *photo.shape)).astype(np.float32)
    depths = np.linspace(1.0, 0.0, num_layers) if num_layers > 1 else np.zeros(1)
    return LayeredScene(colours, alphas.astype(np.float32), depths)
