"""Training pairs cut on the fly: photo and dead-leaves patches defocused by `model.degrade`.

Each pair is drawn with the `numpy.random.Generator` the trainer passes for that step, so the
stream is a pure function of (seed, step) and a resumed run sees exactly the batches an
uninterrupted one would. A window a little larger than the patch (`MARGIN_PX` a side) is
degraded and the centre patch kept, so blur at the patch border sees real neighbouring pixels
rather than padding.

Half of the examples (`uniform_fraction`) get one disk over the whole patch (what the synthetic
evaluation measures), the rest spatially varying defocus from layered depth (what real photos
have). Dead-leaves scenes (Achddou et al. 2021) carry their own occlusion layers; photos get a
random smooth depth field (`model.degrade.photo_scene`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from model.dead_leaves import DeadLeavesSettings, dead_leaves
from model.degrade import (
    BlurDistribution,
    LayeredScene,
    SensorModel,
    composite_defocus,
    convolve,
    degrade_scene,
    disk_psf,
    photo_scene,
)
from model.train_config import DataSection

MARGIN_PX = 12  # > the largest blur radius (8 px): the kept patch never sees the padding
PALETTE_SIZE = 4096  # photo pixels the dead-leaves colours are drawn from
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_DRAWS = 20  # redraws of a pair that came out non-finite before giving up


@dataclass
class TrainingPairs:
    """A source of (blurry, sharp) training patches.

    Args:
        photos: (H, W, 3) uint8 images, each larger than a window.
        dead_leaves_fraction: share of patches cut from dead-leaves scenes.
        dead_leaves_px: side of each generated dead-leaves scene.
        seed: seeds the pool of dead-leaves scenes (generated once).
        pool: number of dead-leaves scenes generated up front (cropped at random afterwards).
        uniform_fraction: share of patches blurred by one disk instead of layered defocus.
        uniform_radius_px: range of that disk's radius.
    """

    photos: Sequence[np.ndarray]
    dead_leaves_fraction: float
    dead_leaves_px: int
    seed: int
    pool: int = 8
    uniform_fraction: float = 0.5
    uniform_radius_px: tuple[float, float] = (0.5, 7.0)
    blur: BlurDistribution = field(default_factory=BlurDistribution)
    sensor: SensorModel = field(default_factory=SensorModel)

    def __post_init__(self) -> None:
        if not self.photos and self.dead_leaves_fraction < 1.0:
            raise ValueError("no photos: set dead_leaves_fraction = 1.0 or prepare photos")
        rng = np.random.default_rng([self.seed, 0xDEAD1EAF])
        palette = None
        if self.photos:
            pixels = [p.reshape(-1, 3) for p in self.photos]
            per_photo = PALETTE_SIZE // len(pixels) + 1
            picks = [px[rng.integers(0, len(px), per_photo)] for px in pixels]
            palette = np.concatenate(picks).astype(np.float32) / 255.0
        settings = DeadLeavesSettings(size_px=self.dead_leaves_px)
        self.scenes: list[LayeredScene] = (
            [dead_leaves(rng, palette, settings) for _ in range(self.pool)]
            if self.dead_leaves_fraction > 0
            else []
        )
        self.description = (
            f"{len(self.photos)} photos + {len(self.scenes)} dead-leaves scenes of"
            f" {self.dead_leaves_px} px ({self.dead_leaves_fraction:.0%} of patches),"
            f" {self.uniform_fraction:.0%} uniform disk r in {self.uniform_radius_px} px,"
            f" the rest layered defocus; noise sigma <= {self.sensor.noise_sigma_max}"
        )

    def sample(
        self, rng: np.random.Generator, batch: int, patch_px: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(blurry, sharp): two float32 (batch, patch_px, patch_px, 3) arrays in [0, 1]."""
        pairs = [self._one(rng, patch_px) for _ in range(batch)]
        return np.stack([b for b, _ in pairs]), np.stack([s for _, s in pairs])

    def _one(self, rng: np.random.Generator, patch_px: int) -> tuple[np.ndarray, np.ndarray]:
        # `disk_psf` returns NaN for radii in about (0.001, 0.044) px (no sub-pixel sample falls
        # inside so tiny a disk), which layered defocus draws now and then for a layer near the
        # focal plane. One NaN pixel would poison the whole run, so such a draw is redrawn.
        for _ in range(MAX_DRAWS):
            with np.errstate(invalid="ignore"):
                blurry, sharp = self._draw(rng, patch_px)
            if np.isfinite(blurry).all() and np.isfinite(sharp).all():
                return blurry, sharp
        raise RuntimeError(f"{MAX_DRAWS} training pairs in a row were not finite")

    def _draw(self, rng: np.random.Generator, patch_px: int) -> tuple[np.ndarray, np.ndarray]:
        window = patch_px + 2 * MARGIN_PX
        if self.scenes and rng.random() < self.dead_leaves_fraction:
            scene = _crop_scene(self.scenes[int(rng.integers(len(self.scenes)))], window, rng)
        else:
            photo = self.photos[int(rng.integers(len(self.photos)))]
            scene = photo_scene(_augment(_crop(photo, window, rng), rng), rng)
        if rng.random() < self.uniform_fraction:
            sharp = composite_defocus(scene, [disk_psf(0.0)] * len(scene.depths))
            psf = disk_psf(rng.uniform(*self.uniform_radius_px))
            blurry = self.sensor.apply(convolve(sharp, psf), rng)
        else:
            pair = degrade_scene(scene, rng, self.blur, self.sensor)
            sharp, blurry = pair.sharp, pair.blurry
        keep = np.s_[MARGIN_PX : MARGIN_PX + patch_px, MARGIN_PX : MARGIN_PX + patch_px]
        return blurry[keep].astype(np.float32), sharp[keep].astype(np.float32)


def _crop(image: np.ndarray, window: int, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    if h < window or w < window:
        raise ValueError(f"image {h}x{w} is smaller than a {window} px training window")
    y, x = int(rng.integers(0, h - window + 1)), int(rng.integers(0, w - window + 1))
    return image[y : y + window, x : x + window]


def _augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random one of the 8 flips/rotations, as float32 in [0, 1]."""
    image = np.rot90(image, int(rng.integers(4)))
    image = image[:, ::-1] if rng.random() < 0.5 else image
    return np.ascontiguousarray(image, dtype=np.float32) / 255.0


def _crop_scene(scene: LayeredScene, window: int, rng: np.random.Generator) -> LayeredScene:
    size = scene.alphas.shape[1]
    y, x = int(rng.integers(0, size - window + 1)), int(rng.integers(0, size - window + 1))
    crop = np.s_[:, y : y + window, x : x + window]
    alphas = scene.alphas[crop].copy()
    alphas[0] = 1.0  # the farthest layer stays a full background
    return LayeredScene(scene.colours[crop], alphas, scene.depths)


def load_photos(folder: Path, downscale: int) -> list[np.ndarray]:
    """Every JPEG/PNG under `folder` (sorted by path), box-downscaled by `downscale`, as uint8.

    Downscaling by 2 removes most JPEG and demosaicing artefacts, which would otherwise teach
    the network to reproduce them as "sharp" detail.

    Returns:
        (H, W, 3) uint8 arrays.
    """
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES)
    if not paths:
        raise ValueError(f"no .jpg/.png photos under {folder}")
    photos = []
    for path in paths:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            photos.append(np.asarray(rgb.reduce(downscale) if downscale > 1 else rgb))
    return photos


def build_pair_source(data: DataSection, seed: int) -> TrainingPairs:
    """The training pairs a run's `[data]` section describes (photos only if a folder is set)."""
    photos = load_photos(Path(data.photos_dir), data.photos_downscale) if data.photos_dir else []
    return TrainingPairs(photos, data.dead_leaves_fraction, data.dead_leaves_px, seed)
