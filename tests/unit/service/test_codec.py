"""The codec: every supported input kind comes back with its size, mode, alpha and ICC."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from service.codec import decode, encode, output_mode
from service.schemas import OutputFormat
from service.uploads import open_upload
from tests import sample_images

MAX_PIXELS = 10_000_000


def round_trip(data: bytes, output_format: OutputFormat = OutputFormat.PNG) -> Image.Image:
    """Decode an upload and encode its own colours back (the identity 'restoration')."""
    decoded = decode(open_upload(data, MAX_PIXELS))
    encoded, mode = encode(decoded.rgb, decoded, output_format)
    result = Image.open(io.BytesIO(encoded))
    assert result.mode == mode
    return result


@pytest.mark.parametrize(
    ("builder", "mode", "size"),
    [
        (sample_images.png_rgb, "RGB", (40, 30)),
        (sample_images.png_rgba, "RGBA", (40, 30)),
        (sample_images.png_gray, "L", (40, 30)),
        (sample_images.png_gray16, "I;16", (40, 30)),
        (sample_images.jpeg_exif_rotated, "RGB", (30, 40)),
        (sample_images.webp_rgb, "RGB", (40, 30)),
    ],
)
def test_png_output_keeps_size_and_mode(
    builder: Callable[[], bytes], mode: str, size: tuple[int, int]
) -> None:
    result = round_trip(builder())
    assert result.size == size
    assert result.mode == mode


def test_rgb_png_round_trip_is_exact() -> None:
    data = sample_images.png_rgb()
    original = np.asarray(Image.open(io.BytesIO(data)))
    assert np.array_equal(np.asarray(round_trip(data)), original)


def test_alpha_is_reattached_unchanged() -> None:
    data = sample_images.png_rgba()
    alpha = np.asarray(Image.open(io.BytesIO(data)).getchannel("A"))
    assert np.array_equal(np.asarray(round_trip(data).getchannel("A")), alpha)


def test_16bit_gray_keeps_16bit_precision() -> None:
    data = sample_images.png_gray16()
    original = np.asarray(Image.open(io.BytesIO(data))).astype(np.int64)
    restored = np.asarray(round_trip(data)).astype(np.int64)
    assert np.abs(restored - original).max() <= 1
    assert len(np.unique(restored)) > 256  # not reduced to 8 bits


def test_icc_profile_survives() -> None:
    data = sample_images.png_with_icc()
    profile = Image.open(io.BytesIO(data)).info["icc_profile"]
    assert round_trip(data).info.get("icc_profile") == profile
    assert round_trip(data, OutputFormat.JPEG).info.get("icc_profile") == profile


def test_cmyk_is_cmyk_in_jpeg_and_rgb_in_png() -> None:
    data = sample_images.jpeg_cmyk()
    assert round_trip(data, OutputFormat.JPEG).mode == "CMYK"
    assert round_trip(data, OutputFormat.PNG).mode == "RGB"


def test_exif_rotation_is_applied() -> None:
    data = sample_images.jpeg_exif_rotated()
    decoded = decode(open_upload(data, MAX_PIXELS))
    assert decoded.rgb.shape == (40, 30, 3)  # stored 40 wide x 30 high, EXIF says rotate 90


@pytest.mark.parametrize(
    ("mode", "output_format", "expected"),
    [
        ("RGBA", OutputFormat.JPEG, "RGB"),
        ("RGBA", OutputFormat.WEBP, "RGBA"),
        ("I;16", OutputFormat.JPEG, "L"),
        ("LA", OutputFormat.PNG, "LA"),
        ("P", OutputFormat.PNG, "RGB"),
        ("1", OutputFormat.PNG, "L"),
    ],
)
def test_output_modes(mode: str, output_format: OutputFormat, expected: str) -> None:
    assert output_mode(mode, output_format) == expected


def _png(image: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **params)
    return buffer.getvalue()


def test_palette_and_colour_key_transparency_is_kept() -> None:
    palette = Image.new("P", (6, 4), 0)
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.putpixel((1, 1), 1)
    keyed_rgb = Image.new("RGB", (6, 4), (10, 20, 30))
    keyed_rgb.putpixel((2, 2), (200, 100, 50))
    keyed_gray = Image.new("L", (6, 4), 7)
    keyed_gray.putpixel((3, 1), 90)
    cases = [
        (_png(palette, transparency=0), "RGBA"),
        (_png(keyed_rgb, transparency=(10, 20, 30)), "RGBA"),
        (_png(keyed_gray, transparency=7), "LA"),
    ]
    for data, mode in cases:
        result = round_trip(data)
        assert result.mode == mode
        alpha = np.asarray(result.getchannel("A"))
        assert alpha[0, 0] == 0  # the transparent colour stays transparent
        assert alpha.max() == 255
    webp = round_trip(cases[0][0], OutputFormat.WEBP)
    assert webp.mode == "RGBA"
