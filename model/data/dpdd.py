"""The DPDD dual-pixel defocus-deblurring dataset (Abuolaim & Brown, ECCV 2020), if you have it.

Layout (as distributed; nothing here downloads it):

    ROOT/train_c/source/*.png   blurred combined view      ROOT/train_c/target/*.png  sharp
    ROOT/train_l/source/*.png   blurred left view          ROOT/train_r/source/*.png  right view
    ROOT/test_c/..., test_l/..., test_r/...  (val_* the same)

The images are 16-bit RGB PNGs. Pillow opens them as 8-bit "RGB" (it keeps the high byte), which
throws away the low 8 bits. `read_image` recovers the full range with Pillow's own decoder: it
decodes the file twice, once keeping the high byte of each big-endian sample ("RGB;16B") and once
reading the samples as little-endian ("RGB;16L"), which keeps the other byte; PNG unfiltering runs
in C both times with the right 6-byte pixel stride, so value = 256 * high + low exactly.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def read_image(path: Path) -> np.ndarray:
    """Read an 8- or 16-bit RGB (or grey) image file at its full precision.

    Returns:
        (H, W, 3) float32 in [0, 1]; 16-bit files are divided by 65535, 8-bit ones by 255.
    """
    with Image.open(path) as image:
        if image.format == "PNG" and image.tile and image.tile[0].args in ("RGB;16B", "RGBA;16B"):
            return _read_png_rgb16(path)
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            grey = np.asarray(image, np.float32) / 65535.0
            return np.repeat(grey[..., None], 3, axis=2)
        return np.asarray(image.convert("RGB"), np.float32) / 255.0


def _read_png_rgb16(path: Path) -> np.ndarray:
    """Decode a 16-bit RGB(A) PNG into (H, W, 3) float32 in [0, 1] (alpha dropped)."""
    with Image.open(path) as high_image:
        high = np.asarray(high_image.convert("RGB"), np.uint16)
    with Image.open(path) as low_image:
        tile = low_image.tile[0]
        swapped = "RGB;16L" if tile.args == "RGB;16B" else "RGBA;16L"
        low_image.tile = [ImageFile._Tile(tile.codec_name, tile.extents, tile.offset, swapped)]
        low = np.asarray(low_image.convert("RGB"), np.uint16)
    return (high * 256 + low).astype(np.float32) / 65535.0


class Split(enum.Enum):
    """A DPDD split; its value is the folder prefix."""

    TRAIN = "train"
    VAL = "val"
    TEST = "test"


@dataclass(frozen=True)
class DpddExample:
    """One scene.

    name: file name. sharp / blurry: (H, W, 3) float32 in [0, 1].
    dual_pixel: (H, W, 6) float32 left and right views stacked, or None (not loaded / absent).
    """

    name: str
    sharp: np.ndarray
    blurry: np.ndarray
    dual_pixel: np.ndarray | None


class DpddDataset:
    """Pairs of one DPDD split, read lazily from disk.

    Args:
        root: the folder holding `train_c`, `test_c`, ... .
        split: which split.
        use_dual_pixel: also load the left/right views (needs `<split>_l` and `<split>_r`).
    """

    def __init__(self, root: Path, split: Split = Split.TEST, use_dual_pixel: bool = False) -> None:
        self.root = Path(root)
        self.split = split
        self.use_dual_pixel = use_dual_pixel
        combined = self.root / f"{split.value}_c"
        source, target = combined / "source", combined / "target"
        for folder in (source, target):
            if not folder.is_dir():
                raise FileNotFoundError(
                    f"{folder} not found: expected the DPDD layout ROOT/{split.value}_c/source and "
                    f"ROOT/{split.value}_c/target under {self.root}"
                )
        self.names = sorted(p.name for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.names:
            raise FileNotFoundError(f"no images in {source}")
        missing = [name for name in self.names if not (target / name).is_file()]
        if use_dual_pixel:
            for view in ("l", "r"):
                folder = self.root / f"{split.value}_{view}" / "source"
                missing += [str(folder / n) for n in self.names if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} DPDD files missing, e.g. {missing[:3]}")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> DpddExample:
        name = self.names[index]
        prefix = self.split.value
        blurry = read_image(self.root / f"{prefix}_c" / "source" / name)
        sharp = read_image(self.root / f"{prefix}_c" / "target" / name)
        if sharp.shape != blurry.shape:
            raise ValueError(f"{name}: source {blurry.shape} and target {sharp.shape} differ")
        dual_pixel = None
        if self.use_dual_pixel:
            left = read_image(self.root / f"{prefix}_l" / "source" / name)
            right = read_image(self.root / f"{prefix}_r" / "source" / name)
            dual_pixel = np.concatenate([left, right], axis=2)
        return DpddExample(name, sharp, blurry, dual_pixel)

    def __iter__(self) -> Iterator[DpddExample]:
        for index in range(len(self)):
            yield self[index]
