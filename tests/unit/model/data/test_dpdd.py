"""DPDD loading: exact 16-bit decoding and the dataset layout, on a tiny folder built here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.data.dpdd import DpddDataset, Split, read_image
from tests.sample_images import write_png16


def test_read_image_recovers_all_16_bits(tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 65536, (9, 13, 3), dtype=np.uint16)
    path = tmp_path / "x.png"
    write_png16(path, pixels)
    decoded = read_image(path)
    assert decoded.dtype == np.float32
    assert decoded.shape == (9, 13, 3)
    np.testing.assert_array_equal(
        np.round(decoded.astype(np.float64) * 65535).astype(np.uint16), pixels
    )
    # What Pillow alone gives: the high byte only.
    with Image.open(path) as plain:
        np.testing.assert_array_equal(np.asarray(plain.convert("RGB")), pixels >> 8)


def test_read_image_8_bit_and_grey_16_bit(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb8.png")
    np.testing.assert_allclose(read_image(tmp_path / "rgb8.png"), rgb / 255.0, atol=1e-7)
    grey = np.random.default_rng(2).integers(0, 65536, (5, 6), dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    decoded = read_image(tmp_path / "grey16.png")
    assert decoded.shape == (5, 6, 3)
    np.testing.assert_allclose(decoded[..., 1], grey / 65535.0, atol=1e-7)


def _build_dpdd(
    root: Path, split: str, names: list[str], with_views: bool
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    written = {}
    folders = [f"{split}_c/source", f"{split}_c/target"]
    if with_views:
        folders += [f"{split}_l/source", f"{split}_r/source"]
    for folder in folders:
        (root / folder).mkdir(parents=True)
        for name in names:
            pixels = rng.integers(0, 65536, (6, 8, 3), dtype=np.uint16)
            write_png16(root / folder / name, pixels)
            written[f"{folder}/{name}"] = pixels.astype(np.float32) / 65535.0
    return written


def test_dataset_reads_pairs_and_dual_pixel_views(tmp_path: Path) -> None:
    names = ["1P0A0001.png", "1P0A0002.png"]
    written = _build_dpdd(tmp_path, "test", names, with_views=True)
    dataset = DpddDataset(tmp_path, Split.TEST, use_dual_pixel=True)
    assert len(dataset) == 2
    example = dataset[1]
    assert example.name == names[1]
    np.testing.assert_allclose(example.blurry, written[f"test_c/source/{names[1]}"], atol=1e-7)
    np.testing.assert_allclose(example.sharp, written[f"test_c/target/{names[1]}"], atol=1e-7)
    assert example.dual_pixel is not None
    assert example.dual_pixel.shape == (6, 8, 6)
    np.testing.assert_allclose(
        example.dual_pixel[..., 3:], written[f"test_r/source/{names[1]}"], atol=1e-7
    )
    assert [e.name for e in dataset] == names
    assert DpddDataset(tmp_path, Split.TEST)[0].dual_pixel is None


def test_dataset_errors_name_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train_c/source"):
        DpddDataset(tmp_path, Split.TRAIN)
    _build_dpdd(tmp_path, "train", ["a.png"], with_views=False)
    (tmp_path / "train_c" / "target" / "a.png").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        DpddDataset(tmp_path, Split.TRAIN)
