"""16-bit colour PNG, TIFF and HEIC in; 16-bit kept to the last bit; refusals by header."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image

from service.codec import ImageRefusedError, encode
from service.schemas import OutputFormat
from service.uploads import configure_pillow, inspect_upload, load_upload
from tests import sample_images

MAX_PIXELS = 10_000_000
ICC = b"fake icc profile " * 8


def identity(data: bytes, output_format: OutputFormat) -> tuple[bytes, str]:
    """Decode an upload and encode its own colours back (the identity 'restoration')."""
    decoded = load_upload(data, MAX_PIXELS)
    return encode(decoded.rgb, decoded, output_format)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (sample_images.png_rgb16(), sample_images.rgb16()),
        (sample_images.tiff_rgb16(), sample_images.rgb16()),
    ],
    ids=["png", "tiff-lzw"],
)
def test_16bit_colour_comes_back_exactly_at_16_bits(data: bytes, expected: np.ndarray) -> None:
    info = inspect_upload(data, MAX_PIXELS)
    assert (info.width, info.height, info.mode) == (20, 10, "RGB;16")
    png, mode = identity(data, OutputFormat.PNG)
    assert mode == "RGB;16"
    assert np.array_equal(imagecodecs.png_decode(png), expected)
    tiff, _ = identity(data, OutputFormat.TIFF)
    page = tifffile.TiffFile(io.BytesIO(tiff)).pages.first
    assert np.array_equal(page.asarray(), expected)
    jpeg, jpeg_mode = identity(data, OutputFormat.JPEG)
    assert jpeg_mode == "RGB"
    assert Image.open(io.BytesIO(jpeg)).mode == "RGB"


def test_16bit_alpha_and_icc_are_kept() -> None:
    png, mode = identity(sample_images.png_rgba16(), OutputFormat.PNG)
    assert mode == "RGBA;16"
    restored = imagecodecs.png_decode(png)
    assert restored.dtype == np.uint16
    assert restored.shape == (10, 20, 4)
    assert restored[..., 3].max() == 65535
    tiff = sample_images.tiff(sample_images.rgb16(), photometric="rgb", iccprofile=ICC)
    encoded, _ = identity(tiff, OutputFormat.PNG)
    assert _iccp(encoded) == ICC
    encoded_tiff, _ = identity(tiff, OutputFormat.TIFF)
    assert tifffile.TiffFile(io.BytesIO(encoded_tiff)).pages.first.iccprofile == ICC
    webp, webp_mode = identity(sample_images.png_rgba16(), OutputFormat.WEBP)
    assert (webp_mode, Image.open(io.BytesIO(webp)).mode) == ("RGBA", "RGBA")


def _iccp(png: bytes) -> bytes | None:
    position = 8
    while position < len(png):
        length, name = struct.unpack(">I4s", png[position : position + 8])
        if name == b"iCCP":
            body = png[position + 8 : position + 8 + length]
            return zlib.decompress(body[body.index(b"\x00") + 2 :])
        position += 12 + length
    return None


@pytest.mark.parametrize(
    ("samples", "options", "mode"),
    [
        (sample_images.gradient(40, 30), {"photometric": "rgb"}, "RGB"),
        (sample_images.gradient(40, 30, 1)[..., 0], {}, "L"),
        (sample_images.rgb16()[..., 0], {}, "I;16"),
        (
            sample_images.gradient(40, 30, 4),
            {"photometric": "rgb", "extrasamples": ["unassalpha"]},
            "RGBA",
        ),
        (
            np.moveaxis(sample_images.gradient(40, 30), -1, 0),
            {"photometric": "rgb", "planarconfig": "separate"},
            "RGB",
        ),
        (sample_images.gradient(40, 30), {"photometric": "rgb", "tile": (16, 16)}, "RGB"),
    ],
    ids=["rgb8", "gray8", "gray16", "rgba8", "planar", "tiled"],
)
def test_tiff_kinds_round_trip_at_their_depth(
    samples: np.ndarray, options: dict[str, object], mode: str
) -> None:
    data = sample_images.tiff(samples, **options)
    assert inspect_upload(data, MAX_PIXELS).mode == mode
    encoded, out_mode = identity(data, OutputFormat.TIFF)
    assert out_mode == mode
    back = tifffile.TiffFile(io.BytesIO(encoded)).pages.first.asarray()
    assert back.dtype == samples.dtype
    if options.get("planarconfig") == "separate":
        samples = np.moveaxis(samples, 0, -1)
    assert np.array_equal(back.reshape(samples.shape), samples)


def test_tiff_orientation_is_applied() -> None:
    data = sample_images.tiff(
        sample_images.gradient(40, 30), photometric="rgb", extratags=[(274, "H", 1, 6, True)]
    )
    info = inspect_upload(data, MAX_PIXELS)
    assert (info.width, info.height) == (30, 40)


def test_heic_is_taken_with_the_pixel_limit_from_its_header() -> None:
    configure_pillow(MAX_PIXELS)
    data = sample_images.heic()
    info = inspect_upload(data, MAX_PIXELS)
    assert (info.format, info.width, info.height, info.mode) == ("HEIF", 40, 30, "RGB")
    encoded, mode = identity(data, OutputFormat.PNG)
    assert (mode, Image.open(io.BytesIO(encoded)).size) == ("RGB", (40, 30))
    with pytest.raises(ImageRefusedError) as refused:
        inspect_upload(data, 1000)
    assert refused.value.code == "too_many_pixels"
    configure_pillow(MAX_PIXELS)


def _tiff_bomb() -> bytes:
    """A valid small TIFF whose header is patched to claim 50,000 x 50,000 pixels."""
    data = bytearray(sample_images.tiff(np.zeros((4, 4), np.uint8)))
    page = tifffile.TiffFile(io.BytesIO(bytes(data))).pages.first
    for tag in (256, 257):
        offset = page.tags[tag].valueoffset
        size = 2 if page.tags[tag].dtype == 3 else 4
        data[offset : offset + size] = (50_000).to_bytes(size, "little")
    return bytes(data)


REFUSED: list[tuple[str, Callable[[], bytes], str]] = [
    ("tiff bomb", _tiff_bomb, "too_many_pixels"),
    ("png16 bomb", lambda: sample_images.png_rgb16(5000, 5000)[:200], "too_many_pixels"),
    ("cmyk tiff", lambda: sample_images.tiff(
        sample_images.gradient(8, 8, 4), photometric="separated"), "unsupported_media_type"),
    ("float tiff", lambda: sample_images.tiff(
        np.zeros((8, 8), np.float32)), "unsupported_bit_depth"),
    ("truncated tiff", lambda: sample_images.tiff_rgb16(200, 200)[:3000], "invalid_image"),
    ("corrupt tiff", lambda: b"II*\x00" + b"\xff" * 40, "invalid_image"),
    ("truncated png16", lambda: sample_images.png_rgb16(200, 200)[:3000], "invalid_image"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "build", "code"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refusals(name: str, build: Callable[[], bytes], code: str) -> None:
    with pytest.raises(ImageRefusedError) as refused:
        inspect_upload(build(), MAX_PIXELS)
    assert refused.value.code == code, refused.value.message
