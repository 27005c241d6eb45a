"""Training pairs: shapes, determinism per index, sources, augmentation, the prepared cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.data.degrade import BlurDistribution, SensorModel
from model.data.pairs import DefocusPatches, PatchSettings, PhotoPatch, augment
from model.data.photos import prepare_photos


def _photos() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (72, 80, 3), dtype=np.uint8) for _ in range(2)]


def _settings(**changes: object) -> PatchSettings:
    base = {
        "patch_px": 24,
        "blur": BlurDistribution(max_px=4.0),
        "epoch_size": 50,
        "sensor": SensorModel(noise_sigma_max=0.01),
    }
    return PatchSettings(**{**base, **changes})  # type: ignore[arg-type]


PATCHES = [PhotoPatch(0, 0, 0), PhotoPatch(1, 32, 32)]


def test_items_are_shaped_and_a_pure_function_of_seed_and_index() -> None:
    data = DefocusPatches(_photos(), PATCHES, 32, _settings(), seed=3)
    assert len(data) == 50
    blurry, sharp = data[7]
    assert blurry.shape == (3, 24, 24)
    assert sharp.shape == (3, 24, 24)
    assert blurry.dtype == torch.float32
    assert float(blurry.min()) >= 0.0
    assert float(blurry.max()) <= 1.0
    again = DefocusPatches(_photos(), PATCHES, 32, _settings(), seed=3)[7]
    torch.testing.assert_close(again[0], blurry)
    torch.testing.assert_close(again[1], sharp)
    other_index, other_seed = (
        data[8],
        DefocusPatches(_photos(), PATCHES, 32, _settings(), seed=4)[7],
    )
    assert not torch.equal(other_index[1], sharp)
    assert not torch.equal(other_seed[1], sharp)


def test_photo_items_show_photo_content_and_blur_it() -> None:
    photos = _photos()
    data = DefocusPatches(photos, PATCHES, 32, _settings(dead_leaves_fraction=0.0), seed=1)
    originals = {tuple(p.reshape(-1, 3)[0]) for p in photos}
    assert originals
    levels = set()
    for index in range(6):
        blurry, sharp, radius = data.pair(index)
        assert radius.shape == sharp.shape[:2]
        values = np.round(sharp * 255).reshape(-1, 3)
        levels.add(
            float(np.abs(np.diff(blurry, axis=1)).mean() < np.abs(np.diff(sharp, axis=1)).mean())
        )
        assert np.allclose(values, np.round(values))  # photo pixels, untouched by blur
    assert levels == {1.0}  # blur smooths every pair


def test_dead_leaves_and_dual_pixel_items() -> None:
    settings = _settings(dead_leaves_fraction=1.0, use_dual_pixel=True)
    data = DefocusPatches([], [], 32, settings, seed=2)
    blurry, sharp = data[0]
    assert blurry.shape == (6, 24, 24)
    assert sharp.shape == (3, 24, 24)
    with pytest.raises(ValueError, match="no photo patches"):
        DefocusPatches([], [], 32, _settings())


def test_augment_is_the_eight_element_group() -> None:
    image = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    variants = {augment(image, code).tobytes() for code in range(8)}
    assert len(variants) == 8
    np.testing.assert_array_equal(augment(image, 0), image)


def test_from_cache_reads_prepared_photos(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    for i, photo in enumerate(_photos()):
        Image.fromarray(np.repeat(np.repeat(photo, 2, axis=0), 2, axis=1)).save(folder / f"{i}.png")
    prepare_photos(tmp_path / "cache", folder, patch_px=32, drop_fraction=0.0)
    data = DefocusPatches.from_cache(tmp_path / "cache", _settings(dead_leaves_fraction=0.0))
    assert len(data.photos) == 2
    assert data.photos[0].shape == (72, 80, 3)
    assert len(data.patches) == 2 * (72 // 32) * (80 // 32)
    blurry, _ = data[0]
    assert blurry.shape == (3, 24, 24)
    assert data.palette is not None
    assert data.palette.shape[1] == 3
