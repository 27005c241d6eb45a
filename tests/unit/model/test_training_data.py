"""Training pairs: shapes, range, determinism per generator, photos from a folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.train_config import DataSection
from model.training_data import TrainingPairs, build_pair_source, load_photos


@pytest.fixture(scope="module")
def pairs() -> TrainingPairs:
    photo = (np.random.default_rng(0).random((96, 120, 3)) * 255).astype(np.uint8)
    return TrainingPairs([photo], dead_leaves_fraction=0.5, dead_leaves_px=64, seed=0, pool=2)


def test_pairs_have_the_patch_shape_and_range(pairs: TrainingPairs) -> None:
    blurry, sharp = pairs.sample(np.random.default_rng(1), 6, 32)
    assert blurry.shape == sharp.shape == (6, 32, 32, 3)
    assert blurry.dtype == sharp.dtype == np.float32
    assert 0.0 <= blurry.min() <= blurry.max() <= 1.0
    assert 0.0 <= sharp.min() <= sharp.max() <= 1.0
    assert not np.array_equal(blurry, sharp)


def test_same_generator_same_pairs(pairs: TrainingPairs) -> None:
    a = pairs.sample(np.random.default_rng(7), 3, 32)
    b = pairs.sample(np.random.default_rng(7), 3, 32)
    c = pairs.sample(np.random.default_rng(8), 3, 32)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])


def test_dead_leaves_only_needs_no_photos() -> None:
    source = TrainingPairs([], dead_leaves_fraction=1.0, dead_leaves_px=48, seed=0, pool=1)
    assert source.sample(np.random.default_rng(0), 1, 16)[0].shape == (1, 16, 16, 3)
    with pytest.raises(ValueError, match="no photos"):
        TrainingPairs([], dead_leaves_fraction=0.5, dead_leaves_px=48, seed=0)


def test_photos_load_downscaled_from_a_folder(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (80, 60), (10, 20, 30)).save(tmp_path / "sub" / "a.png")
    Image.new("RGB", (40, 40), (200, 100, 0)).save(tmp_path / "b.jpg")
    (tmp_path / "notes.txt").write_text("not a photo")
    photos = load_photos(tmp_path, downscale=2)
    assert [p.shape for p in photos] == [(20, 20, 3), (30, 40, 3)]  # sorted by path
    assert photos[1].dtype == np.uint8
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no \.jpg/\.png photos"):
        load_photos(tmp_path / "empty", 2)


def test_build_pair_source_from_the_data_section(tmp_path: Path) -> None:
    Image.new("RGB", (160, 160), (10, 200, 30)).save(tmp_path / "p.png")
    data = DataSection(photos_dir=str(tmp_path), photos_downscale=1, dead_leaves_px=48)
    source = build_pair_source(data, seed=0)
    assert "1 photos" in source.description
    assert source.sample(np.random.default_rng(0), 2, 16)[0].shape == (2, 16, 16, 3)
