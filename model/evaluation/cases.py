"""The synthetic evaluation set: photos that never enter training, blurred by a known disk.

The photos are the classic test images bundled inside three pip wheels (installed by the
`eval` extra: `pip install 'swintormer[eval]'`), found on disk without importing the packages:
scikit-image (astronaut, coffee, chelsea, rocket, motorcycle_left), scikit-learn (china, flower)
and sporco (kodim23, monarch, sail, tulips, barbara). Each is centre-cropped to at most
`CROP_PX` a side. Every photo is degraded at every (radius, noise) cell with uniform disk
blur, Gaussian noise and 8-bit quantisation, seeded by (seed, photo, cell), so the set is
identical on every machine.

`layered_cases` is the spatially varying set: the same photos cut into depth layers, each
blurred by its own disk (in-focus regions, depth edges), with the true radius map, under its
own fixed seed. Radius maps come with every synthetic case, so a blur estimate can be scored.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.data.degrade import (
    BlurDistribution,
    add_noise,
    composite_defocus,
    convolve,
    photo_scene,
    quantise_8bit,
    radius_map_of,
)
from model.data.dpdd import DpddDataset, Split, read_image
from model.psf import disk_psf

CROP_PX = 384
EVAL_RADII_PX = (1.5, 3.0, 4.5, 6.0)
EVAL_NOISE_SIGMAS = (0.0, 0.01)
EVAL_SEED = 2026
LAYERED_SEED = 7031  # the spatially varying set's own seed (training never uses it)
LAYERED_LAYERS = 4


@dataclass(frozen=True)
class BundledPhoto:
    """A photo shipped inside an installed Python package."""

    name: str
    package: str  # import name
    distribution: str  # pip name
    relative_path: str  # inside the package directory


EVAL_PHOTOS: tuple[BundledPhoto, ...] = (
    BundledPhoto("astronaut", "skimage", "scikit-image", "data/astronaut.png"),
    BundledPhoto("coffee", "skimage", "scikit-image", "data/coffee.png"),
    BundledPhoto("chelsea", "skimage", "scikit-image", "data/chelsea.png"),
    BundledPhoto("rocket", "skimage", "scikit-image", "data/rocket.jpg"),
    BundledPhoto("motorcycle", "skimage", "scikit-image", "data/motorcycle_left.png"),
    BundledPhoto("china", "sklearn", "scikit-learn", "datasets/images/china.jpg"),
    BundledPhoto("flower", "sklearn", "scikit-learn", "datasets/images/flower.jpg"),
    BundledPhoto("kodim23", "sporco", "sporco", "data/kodim23.png"),
    BundledPhoto("monarch", "sporco", "sporco", "data/monarch.png"),
    BundledPhoto("sail", "sporco", "sporco", "data/sail.png"),
    BundledPhoto("tulips", "sporco", "sporco", "data/tulips.png"),
    BundledPhoto("barbara", "sporco", "sporco", "data/barbara.png"),
)


class EvalSetError(RuntimeError):
    """The evaluation photos are not installed."""


def locate(photo: BundledPhoto) -> Path:
    """Path of a bundled photo, found without importing its package."""
    spec = importlib.util.find_spec(photo.package)
    if spec is None or not spec.submodule_search_locations:
        raise EvalSetError(
            f"evaluation photo {photo.name!r} ships with {photo.distribution}, which is not "
            "installed: pip install 'swintormer[eval]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / photo.relative_path
    if not path.is_file():
        raise EvalSetError(f"{photo.distribution} is installed but has no {photo.relative_path}")
    return path


def centre_crop(image: np.ndarray, crop_px: int) -> np.ndarray:
    """The central min(crop_px, H) x min(crop_px, W) window of an (H, W, C) image."""
    h, w = image.shape[:2]
    ch, cw = min(crop_px, h), min(crop_px, w)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return image[y0 : y0 + ch, x0 : x0 + cw]


def load_eval_photos(
    photos: Sequence[BundledPhoto] = EVAL_PHOTOS, crop_px: int = CROP_PX
) -> list[tuple[str, np.ndarray]]:
    """The evaluation photos as (name, (h, w, 3) float32 in [0, 1]) pairs, centre-cropped."""
    return [
        (p.name, np.ascontiguousarray(centre_crop(read_image(locate(p)), crop_px))) for p in photos
    ]


@dataclass(frozen=True)
class EvalCase:
    """One degraded image with its ground truth.

    group: the table column it belongs to (e.g. "r=3 σ=0.01", or "dpdd").
    sharp, blurry: (H, W, 3) float32 in [0, 1]; blurry is the ordinary (combined) image.
    psf: the true (k, k) blur kernel, or None where unknown (real data).
    radius_px, noise_sigma: the degradation (NaN where unknown or spatially varying).
    dual_pixel: (H, W, 6) left and right views for 6-channel models, or None.
    radius_map: (H, W) float32 true defocus radius per pixel in px, or None where unknown.
    layer_radii_px: the distinct radii of a layered case (its candidates for a single-radius
        Wiener oracle); empty otherwise.
    """

    image_name: str
    group: str
    sharp: np.ndarray
    blurry: np.ndarray
    psf: np.ndarray | None
    radius_px: float
    noise_sigma: float
    dual_pixel: np.ndarray | None = None
    radius_map: np.ndarray | None = None
    layer_radii_px: tuple[float, ...] = ()


def cell_label(radius_px: float, noise_sigma: float) -> str:
    """Column label of one (radius, noise) cell, e.g. "r=1.5 σ=0.01"."""
    return f"r={radius_px:g} σ={noise_sigma:g}"


def synthetic_cases(
    photos: Sequence[tuple[str, np.ndarray]],
    radii_px: Sequence[float] = EVAL_RADII_PX,
    noise_sigmas: Sequence[float] = EVAL_NOISE_SIGMAS,
    seed: int = EVAL_SEED,
) -> list[EvalCase]:
    """Degrade every photo at every (radius, noise) cell: disk blur, noise, 8-bit quantisation.

    Cases come cell by cell (radius outer, noise inner), photos in the given order.
    """
    cases = []
    for r_index, radius in enumerate(radii_px):
        psf = disk_psf(radius)
        for n_index, sigma in enumerate(noise_sigmas):
            for p_index, (name, sharp) in enumerate(photos):
                rng = np.random.default_rng([seed, p_index, r_index, n_index])
                blurry = quantise_8bit(add_noise(convolve(sharp, psf), sigma, rng))
                label = cell_label(radius, sigma)
                radius_map = np.full(sharp.shape[:2], radius, np.float32)
                cases.append(
                    EvalCase(name, label, sharp, blurry, psf, radius, sigma, None, radius_map)
                )
    return cases


def layered_cases(
    photos: Sequence[tuple[str, np.ndarray]],
    noise_sigmas: Sequence[float] = EVAL_NOISE_SIGMAS,
    seed: int = LAYERED_SEED,
) -> list[EvalCase]:
    """Spatially varying defocus: every photo cut into depth layers, each blurred by its own disk.

    The layers, focal depth and radii come from the training pipeline's own generators
    (`model.data.degrade.photo_scene`, `BlurDistribution`: DPDD-like radii, every image with an
    in-focus region and depth edges) but with this set's fixed seed, on photos that never enter
    training; the true radius map comes with each case. One group per noise level.
    """
    cases = []
    blur = BlurDistribution()
    for n_index, sigma in enumerate(noise_sigmas):
        for p_index, (name, sharp) in enumerate(photos):
            rng = np.random.default_rng([seed, p_index, n_index])
            scene = photo_scene(sharp, rng, LAYERED_LAYERS)
            radii = blur.layer_radii(scene.depths, rng)
            blurred = composite_defocus(scene, [disk_psf(abs(float(r))) for r in radii])
            blurry = quantise_8bit(add_noise(blurred, sigma, rng))
            layer_radii = tuple(sorted({round(abs(float(r)), 3) for r in radii}))
            cases.append(
                EvalCase(
                    name,
                    f"layered σ={sigma:g}",
                    sharp,
                    blurry,
                    None,
                    math.nan,
                    sigma,
                    None,
                    radius_map_of(scene, radii),
                    layer_radii,
                )
            )
    return cases


def dpdd_cases(
    root: Path, split: Split = Split.TEST, use_dual_pixel: bool = False, limit: int | None = None
) -> Iterator[EvalCase]:
    """DPDD pairs as evaluation cases (group "dpdd <split>", no known PSF), read one at a time.

    With `use_dual_pixel` each case also carries the (H, W, 6) left/right stack.
    """
    dataset = DpddDataset(root, split, use_dual_pixel)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    group = f"dpdd {split.value}"
    for index in range(count):
        ex = dataset[index]
        yield EvalCase(ex.name, group, ex.sharp, ex.blurry, None, math.nan, math.nan, ex.dual_pixel)
