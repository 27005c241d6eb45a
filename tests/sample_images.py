"""Small images of every kind the API and the readers must handle, built in memory (no files in
the repo)."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def gradient(width: int, height: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth uint8 image with some noise, (height, width, channels)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1))] * 2, -1)
    noisy = base[..., :channels] + rng.integers(0, 16, (height, width, channels))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_rgb(width: int = 40, height: int = 30) -> bytes:
    return encode(Image.fromarray(gradient(width, height)))


def png_rgba(width: int = 40, height: int = 30) -> bytes:
    pixels = gradient(width, height, 4)
    pixels[..., 3] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    return encode(Image.fromarray(pixels, "RGBA"))


def png_gray(width: int = 40, height: int = 30) -> bytes:
    return encode(Image.fromarray(gradient(width, height, 1)[..., 0], "L"))


def png_gray16(width: int = 40, height: int = 30) -> bytes:
    values = (np.arange(width * height).reshape(height, width) * 37 % 65536).astype(np.uint16)
    return encode(Image.fromarray(values))


def _filtered_rows(raw: np.ndarray, bpp: int) -> bytes:
    """PNG-filter each row of `raw` (H, row bytes), cycling through all five filter types."""
    x = raw.astype(np.int32)
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    up = np.zeros_like(x)
    up[1:] = x[:-1]
    up_left = np.zeros_like(x)
    up_left[1:, bpp:] = x[:-1, :-bpp]
    estimate = left + up - up_left
    pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
    predictions = [np.zeros_like(x), left, up, (left + up) // 2, paeth]
    out = b""
    for row in range(x.shape[0]):
        kind = row % 5
        out += bytes([kind]) + ((x[row] - predictions[kind][row]) % 256).astype(np.uint8).tobytes()
    return out


def raw_png(
    pixels: np.ndarray, bit_depth: int, colour_type: int, every_filter: bool = False
) -> bytes:
    """A PNG written by hand (Pillow cannot write 16-bit colour).

    Rows use filter 0, or with `every_filter` cycle through all five filter types (what a
    decoder must undo exactly).
    """
    height, width = pixels.shape[:2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    raw = np.stack(
        [np.frombuffer(pixels[y].astype(dtype).tobytes(), np.uint8) for y in range(height)]
    )
    if every_filter:
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        rows = _filtered_rows(raw, bpp=channels * (bit_depth // 8))
    else:
        rows = b"".join(b"\x00" + raw[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def write_png16(path: Path, pixels: np.ndarray) -> None:
    """Write (H, W, 3) uint16 pixels as a 16-bit RGB PNG using every filter type."""
    path.write_bytes(raw_png(pixels, 16, 2, every_filter=True))


def png_rgb16(width: int = 20, height: int = 10) -> bytes:
    values = (np.arange(width * height * 3).reshape(height, width, 3) * 97 % 65536).astype(
        np.uint16
    )
    return raw_png(values, 16, 2)


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A PNG whose header claims `width` x `height` pixels; its data is a few bytes."""
    full = raw_png(np.zeros((1, 1), np.uint8), 8, 0)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    ihdr = b"IHDR" + header
    patched = struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    return full[:8] + patched + full[8 + 25 :]


def jpeg_rgb(width: int = 40, height: int = 30) -> bytes:
    return encode(Image.fromarray(gradient(width, height)), "JPEG", quality=95)


def jpeg_cmyk(width: int = 40, height: int = 30) -> bytes:
    return encode(Image.fromarray(gradient(width, height)).convert("CMYK"), "JPEG", quality=95)


def jpeg_exif_rotated(width: int = 40, height: int = 30) -> bytes:
    """A JPEG stored `width` x `height` whose EXIF says 'rotate 90' (Orientation 6)."""
    image = Image.fromarray(gradient(width, height))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def webp_rgb(width: int = 40, height: int = 30) -> bytes:
    return encode(Image.fromarray(gradient(width, height)), "WEBP", lossless=True)


def png_with_icc(width: int = 40, height: int = 30) -> bytes:
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return encode(Image.fromarray(gradient(width, height)), "PNG", icc_profile=profile)


def gif(width: int = 8, height: int = 8) -> bytes:
    return encode(Image.fromarray(gradient(width, height)), "GIF")


def rgb16(width: int = 20, height: int = 10) -> np.ndarray:
    """A 16-bit RGB ramp whose low bytes matter (an 8-bit path would lose them)."""
    return (np.arange(width * height * 3).reshape(height, width, 3) * 97 % 65536).astype(np.uint16)


def png_rgba16(width: int = 20, height: int = 10) -> bytes:
    alpha = np.linspace(0, 65535, width * height).reshape(height, width, 1).astype(np.uint16)
    return raw_png(np.concatenate([rgb16(width, height), alpha], axis=2), 16, 6)


def tiff(samples: np.ndarray, **options: object) -> bytes:
    """A TIFF of (H, W[, C]) uint8/uint16 samples; `options` go to tifffile.imwrite."""
    import tifffile

    buffer = io.BytesIO()
    tifffile.imwrite(buffer, samples, **options)  # type: ignore[arg-type]
    return buffer.getvalue()


def tiff_rgb16(width: int = 20, height: int = 10) -> bytes:
    return tiff(rgb16(width, height), photometric="rgb", compression="lzw")


def tiff_rgb8(width: int = 40, height: int = 30) -> bytes:
    return tiff(gradient(width, height), photometric="rgb")


def heic(width: int = 40, height: int = 30) -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    return encode(Image.fromarray(gradient(width, height)), "HEIF", quality=90)
