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
* `KernelShapes`: not every lens draws a perfect disk. Some images are blurred by a disk softened
  by a small Gaussian (aberrations, diffraction) or by a cat-eye (the disk clipped by a second,
  offset aperture: vignetting off-axis), so a model trained here does not over-fit to disks.
* Sensor effects: Gaussian noise, 8-bit quantisation, optional JPEG.

All randomness comes from an explicit `numpy.random.Generator`; images are float32 (H, W, C)
arrays in [0, 1].
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from model.psf import (
    POINT_RADIUS_PX,
    disk_grid,
    disk_psf,
    dual_pixel_psfs,
    fast_fft_length,
    gaussian_psf,
)


def reflect_pad_planar(image: np.ndarray, margin: int) -> np.ndarray:
    """Channel-first copy of an (H, W) or (H, W, C) image, reflect-padded for the FFT.

    `margin` pixels go on every side; the bottom and right get a few more so both padded
    sides are fast FFT lengths. The image starts at (margin, margin).

    Returns:
        (C, H', W') float64 array (C = 1 for a 2-D input).
    """
    planar = image[None] if image.ndim == 2 else np.moveaxis(image, 2, 0)
    h, w = planar.shape[1:]
    extra_h = fast_fft_length(h + 2 * margin) - h - margin
    extra_w = fast_fft_length(w + 2 * margin) - w - margin
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


def soft_disk_psf(radius_px: float, sigma_px: float) -> np.ndarray:
    """A disk convolved with a Gaussian of standard deviation `sigma_px`: (k, k), sums to 1."""
    disk = disk_psf(radius_px)
    if sigma_px <= 0:
        return disk
    line = gaussian_psf(sigma_px).sum(axis=0).astype(np.float64)  # its separable 1-D taps
    kernel = np.pad(disk.astype(np.float64), len(line) // 2)
    kernel = np.apply_along_axis(np.convolve, 0, kernel, line, mode="same")
    kernel = np.apply_along_axis(np.convolve, 1, kernel, line, mode="same")
    return (kernel / kernel.sum()).astype(np.float32)


def cat_eye_psf(radius_px: float, offset: float, angle_rad: float) -> np.ndarray:
    """The lens-shaped intersection of two disks of `radius_px` whose centres lie `offset`
    radii apart along `angle_rad`, centred on the kernel: a vignetted (cat-eye) defocus disk.

    Returns:
        (k, k) float32 kernel summing to 1 (a disk where the intersection would be empty).
    """
    if radius_px < POINT_RADIUS_PX or offset <= 0:
        return disk_psf(radius_px)
    x, y, _ = disk_grid(radius_px)
    dx = 0.5 * offset * radius_px * math.cos(angle_rad)
    dy = 0.5 * offset * radius_px * math.sin(angle_rad)
    inside = ((x - dx) ** 2 + (y - dy) ** 2 <= radius_px**2) & (
        (x + dx) ** 2 + (y + dy) ** 2 <= radius_px**2
    )
    coverage = inside.mean(axis=(2, 3))
    if coverage.sum() == 0:
        return disk_psf(radius_px)
    return (coverage / coverage.sum()).astype(np.float32)


@dataclass(frozen=True)
class KernelShapes:
    """Which lens draws an image's blur: a disk, a softened disk or a cat-eye (one per image)."""

    soft_probability: float = 0.2  # chance of a disk softened by a Gaussian
    soft_sigma_max_px: float = 1.0  # its sigma, drawn uniformly from [0.3, this]
    cat_eye_probability: float = 0.15  # chance of a cat-eye (vignetted) disk
    cat_eye_offset_max: float = 0.8  # its aperture offset in radii, uniform in [0.2, this]

    def kernel_maker(self, rng: np.random.Generator) -> Callable[[float], np.ndarray]:
        """Draw this image's lens; return radius -> kernel for it."""
        draw = rng.random()
        if draw < self.soft_probability:
            sigma = float(rng.uniform(0.3, self.soft_sigma_max_px))
            return lambda radius: soft_disk_psf(radius, sigma)
        if draw < self.soft_probability + self.cat_eye_probability:
            offset = float(rng.uniform(0.2, self.cat_eye_offset_max))
            angle = float(rng.uniform(0.0, 2 * math.pi))
            return lambda radius: cat_eye_psf(radius, offset, angle)
        return disk_psf


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
    # share of images blurred by one radius throughout (a subject far from any focal plane, a
    # missed focus): a blur estimator must then read large radii from every region, which
    # layered scenes, mostly between in focus and their largest radius, teach too rarely
    uniform_fraction: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.min_px <= self.max_px:
            raise ValueError(f"need 0 < min_px <= max_px (got {self.min_px}, {self.max_px})")
        if not 0.0 <= self.uniform_fraction <= 1.0:
            raise ValueError(f"uniform_fraction must be in [0, 1] (got {self.uniform_fraction})")

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
            (K,) float64 signed radii in pixels; the largest |radius| is the sampled maximum
            (every layer at that radius in a `uniform_fraction` share of images).
        """
        if self.uniform_fraction > 0 and rng.random() < self.uniform_fraction:
            return np.full(depths.shape, self.sample_max_radius(rng), dtype=np.float64)
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
    # share of images given no added noise, only 8-bit quantisation (a camera at base ISO)
    clean_fraction: float = 0.0
    jpeg_probability: float = 0.0  # chance an image is stored as JPEG
    jpeg_quality_min: int = 70
    jpeg_quality_max: int = 95

    def __post_init__(self) -> None:
        if not 0.0 <= self.clean_fraction <= 1.0:
            raise ValueError(f"clean_fraction must be in [0, 1], got {self.clean_fraction}")

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noise, quantisation and (with `jpeg_probability`) a JPEG round trip.

        The clean draw is only taken when `clean_fraction` > 0, so settings without it keep
        the random stream (and every pair) they had before it existed.

        Args:
            image: (H, W, C) float32 with C a multiple of 3 (dual-pixel views stacked).
        """
        sigma = rng.uniform(0.0, self.noise_sigma_max)
        if self.clean_fraction > 0.0 and rng.random() < self.clean_fraction:
            sigma = 0.0
        noisy = quantise_8bit(add_noise(image, sigma, rng))
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
    radius_map: (H, W) float32 defocus radius in pixels (unsigned) of the layer seen at each
        pixel of the sharp image: what a blur estimator should predict there.
    """

    sharp: np.ndarray
    blurry: np.ndarray
    dual_pixel: np.ndarray | None
    radii_px: np.ndarray
    radius_map: np.ndarray


def degrade_scene(
    scene: LayeredScene,
    rng: np.random.Generator,
    blur: BlurDistribution,
    sensor: SensorModel,
    use_dual_pixel: bool = False,
    shapes: KernelShapes | None = None,
) -> DegradedPair:
    """Defocus a layered scene with DPDD-like radii, then apply the sensor model.

    The sharp target is the same composite with every layer in focus. With `use_dual_pixel`
    the left and right views are rendered with half-aperture kernels and the combined input
    is their mean (what a dual-pixel camera saves as the ordinary image). `shapes` draws a
    lens other than a perfect disk for some images (single-image path; None: always disks).
    """
    radii = blur.layer_radii(scene.depths, rng)
    sharp = composite_defocus(scene, [disk_psf(0.0)] * len(radii))
    radius_map = radius_map_of(scene, radii)
    if not use_dual_pixel:
        kernel = disk_psf if shapes is None else shapes.kernel_maker(rng)
        blurry = composite_defocus(scene, [kernel(abs(float(r))) for r in radii])
        return DegradedPair(sharp, sensor.apply(blurry, rng), None, radii, radius_map)
    kernels = [dual_pixel_psfs(float(r)) for r in radii]
    left = composite_defocus(scene, [k[0] for k in kernels])
    right = composite_defocus(scene, [k[1] for k in kernels])
    views = sensor.apply(np.concatenate([left, right], axis=2), rng)
    combined = quantise_8bit(0.5 * (views[..., :3] + views[..., 3:]))
    return DegradedPair(sharp, combined, views, radii, radius_map)


def radius_map_of(scene: LayeredScene, radii_px: np.ndarray) -> np.ndarray:
    """Per-pixel |radius| of the layers as composited in focus (front layers cover back ones).

    Args:
        scene: K layers, farthest first.
        radii_px: (K,) signed radius of each layer.

    Returns:
        (H, W) float32 radius map in pixels.
    """
    out = np.zeros(scene.alphas.shape[1:], np.float32)
    for alpha, radius in zip(scene.alphas, radii_px, strict=True):
        out = alpha * abs(float(radius)) + (1.0 - alpha) * out
    return out.astype(np.float32)


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
