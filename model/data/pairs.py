"""Training pairs made on the fly: sharp patches of the prepared photos and dead leaves, defocused.

`DefocusPatches` is a `torch.utils.data.Dataset` whose item `i` is a pure function of
(seed, i): a trainer that resumes at step s asks for the same indices again and gets the same
pairs, on any number of DataLoader workers. Each item:

1. picks a source: a dead-leaves scene (`dead_leaves_fraction`) or a photo patch that survived
   the sharpness ranking of `swintormer data prepare`;
2. crops it with a margin (the largest blur radius) so the blur sees real content beyond the
   patch edge, and flips / rotates it by a multiple of 90 degrees; augmentation happens
   before the blur, because dual-pixel disparity is horizontal and must stay so;
3. defocuses it through `model.data.degrade.degrade_scene` (layered depth, DPDD-like radii,
   noise, 8-bit quantisation, optional JPEG; optionally lenses other than disks) and crops the
   margin away. The radius map of the patch comes with it: what a blur estimator should say.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from model.data.dead_leaves import DeadLeavesSettings, dead_leaves
from model.data.degrade import (
    BlurDistribution,
    KernelShapes,
    SensorModel,
    degrade_scene,
    photo_scene,
)
from model.data.photos import load_prepared

PALETTE_SIZE = 4096  # photo pixels sampled as dead-leaves colours


@dataclass(frozen=True)
class PatchSettings:
    """What a training pair looks like."""

    patch_px: int = 128  # side of the pairs handed to the network
    dead_leaves_fraction: float = 0.3  # share of pairs drawn from dead leaves
    photo_layers: int = 4  # depth bands a photo is cut into
    use_dual_pixel: bool = False  # input is the (6, p, p) left/right stack
    epoch_size: int = 100_000  # len() of the dataset (items are generated, not stored)
    blur: BlurDistribution = field(default_factory=BlurDistribution)
    sensor: SensorModel = field(default_factory=SensorModel)
    shapes: KernelShapes | None = None  # lenses other than perfect disks; None: disks only

    @property
    def margin_px(self) -> int:
        """Context kept around a patch while blurring: the largest radius plus a softened
        disk's Gaussian tail (3 sigma)."""
        return math.ceil(self.blur.max_px * self.blur.scale) + 4


@dataclass(frozen=True)
class PhotoPatch:
    """A sharp region of a prepared photo: photo index and top-left corner of a ranked patch."""

    photo: int
    y: int
    x: int


def augment(image: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 flips/rotations of a square's symmetry group (code in 0..7)."""
    if code & 4:
        image = image[:, ::-1]
    return np.ascontiguousarray(np.rot90(image, code & 3))


class DefocusPatches(Dataset[tuple[Tensor, Tensor]]):
    """Deterministic, endless defocus training pairs.

    Args:
        photos: (H, W, 3) uint8 photos.
        patches: the ranked sharp patches to draw from (corners in `photos`).
        ranked_patch_px: the side of those ranked patches.
        settings: pair size, source mix and degradation.
        seed: item i depends only on (seed, i).
    """

    def __init__(
        self,
        photos: Sequence[np.ndarray],
        patches: Sequence[PhotoPatch],
        ranked_patch_px: int,
        settings: PatchSettings,
        seed: int = 0,
    ) -> None:
        if not patches and settings.dead_leaves_fraction < 1.0:
            raise ValueError("no photo patches: prepare photos or set dead_leaves_fraction=1")
        self.photos = list(photos)
        self.patches = list(patches)
        self.ranked_patch_px = ranked_patch_px
        self.settings = settings
        self.seed = seed
        self.palette = self._palette()

    @classmethod
    def from_cache(cls, cache: Path, settings: PatchSettings, seed: int = 0) -> DefocusPatches:
        """Load what `swintormer data prepare --cache DIR` wrote."""
        prepared = load_prepared(cache)
        names = [entry["name"] for entry in prepared.manifest]
        photos = []
        for name in names:
            with Image.open(prepared.photos_dir / f"{name}.png") as image:
                photos.append(np.asarray(image.convert("RGB")))
        index = {name: i for i, name in enumerate(names)}
        patches = [PhotoPatch(index[p["photo"]], p["y"], p["x"]) for p in prepared.patches]
        return cls(photos, patches, prepared.patch_px, settings, seed)

    def _palette(self) -> np.ndarray | None:
        """Colours for dead leaves, sampled from the photos (None = random colours)."""
        if not self.photos:
            return None
        rng = np.random.default_rng([self.seed, 1])
        sources = rng.integers(0, len(self.photos), PALETTE_SIZE)
        picks = [
            self.photos[i][
                rng.integers(self.photos[i].shape[0]), rng.integers(self.photos[i].shape[1])
            ]
            for i in sources
        ]
        return np.asarray(picks, np.float32) / 255.0

    def __len__(self) -> int:
        return self.settings.epoch_size

    def _photo_crop(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """A size x size float32 crop around a random sharp patch, inside the photo."""
        patch = self.patches[int(rng.integers(len(self.patches)))]
        photo = self.photos[patch.photo]
        h, w = photo.shape[:2]
        if size > h or size > w:
            raise ValueError(f"photo {patch.photo} ({h}x{w}) is smaller than a {size} px crop")
        # The crop's centre lies in the ranked patch; the crop is then pushed inside the photo.
        cy = patch.y + int(rng.integers(self.ranked_patch_px))
        cx = patch.x + int(rng.integers(self.ranked_patch_px))
        y0 = min(max(0, cy - size // 2), h - size)
        x0 = min(max(0, cx - size // 2), w - size)
        return photo[y0 : y0 + size, x0 : x0 + size].astype(np.float32) / 255.0

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Item `index` as arrays: (blurry (p, p, C), sharp (p, p, 3), radius map (p, p)).

        C = 3 or 6 (dual-pixel); the radius map is the defocus radius in pixels at each pixel.
        """
        settings = self.settings
        rng = np.random.default_rng([self.seed, 0, index])
        margin, p = settings.margin_px, settings.patch_px
        size = p + 2 * margin
        if rng.random() < settings.dead_leaves_fraction:
            # Dead leaves are isotropic already: no augmentation. Leaves scale with the area.
            default = DeadLeavesSettings()
            leaves = DeadLeavesSettings(
                size_px=size,
                num_layers=settings.photo_layers,
                background_leaves=max(500, round(default.background_leaves * (size / 256) ** 2)),
            )
            scene = dead_leaves(rng, self.palette, leaves)
        else:
            crop = augment(self._photo_crop(rng, size), int(rng.integers(8)))
            scene = photo_scene(crop, rng, settings.photo_layers)
        pair = degrade_scene(
            scene, rng, settings.blur, settings.sensor, settings.use_dual_pixel, settings.shapes
        )
        blurry = pair.dual_pixel if pair.dual_pixel is not None else pair.blurry
        window = (slice(margin, margin + p), slice(margin, margin + p))
        return (
            np.ascontiguousarray(blurry[window]),
            np.ascontiguousarray(pair.sharp[window]),
            np.ascontiguousarray(pair.radius_map[window]),
        )

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        """Item `index` as tensors: (blurry (C, p, p), sharp (3, p, p)) float32 in [0, 1]."""
        blurry, sharp, _ = self.pair(index)
        return (
            torch.from_numpy(blurry).permute(2, 0, 1).contiguous(),
            torch.from_numpy(sharp).permute(2, 0, 1).contiguous(),
        )
