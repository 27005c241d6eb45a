"""Validation and safe decoding of uploads, shared by the gateway and the worker.

The gateway calls `inspect_upload` before anything is queued, so a client learns at once
that an upload is corrupt, too big or of an unsupported kind; the worker calls `load_upload`
on the same bytes to decode them the same way.

What is accepted and how:
- PNG, JPEG, WebP and HEIC/HEIF through Pillow (`Image.open(..., formats=...)`; nothing else
  is even tried; HEIF by pillow-heif's plugin); 16-bit colour PNG and TIFF through
  `service.high_depth`, after the same header checks.
- The pixel count is checked from the header before any pixel is decoded; Pillow's own
  decompression-bomb check is set to the same limit and its warning is an error.
- Truncated or corrupt data fails at `load()` (Pillow's LOAD_TRUNCATED_IMAGES stays off).
- Everything about pixels (modes, EXIF orientation, ICC, 16-bit) is the one codec's,
  `service.codec` (16-bit colour PNG and TIFF: `service.high_depth`); this module adds the
  limits and guards around it.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass

import pillow_heif
from PIL import Image, UnidentifiedImageError
from PIL import _imaging as pillow_core

from service import high_depth
from service.codec import (
    DecodedImage,
    ImageRefusedError,
    decode,
    from_pixels,
    refuse_unsupported_mode,
    upright,
)
from service.errors import ErrorCode

# What Pillow may open (HEIF through pillow-heif); 16-bit colour PNG and TIFF are
# `service.high_depth`'s.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "HEIF")
PILLOW_BLOCK_BYTES = 64 * 1024 * 1024
ORIENTATION_TAG = 0x0112
# EXIF orientations that swap width and height (transpose, rotate 90/270, transverse)
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})
# The first bytes of PNG and JPEG files (WebP: "RIFF", size, "WEBP").
SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


@dataclass(frozen=True)
class UploadInfo:
    """What the gateway learns from a valid upload (sizes are after EXIF orientation)."""

    format: str
    width: int
    height: int
    mode: str


def configure_pillow(max_pixels: int) -> None:
    """Make Pillow's decompression-bomb guard use our limit and raise instead of warn.

    Process-wide by nature (Pillow keeps the limit in a module global); called once by
    `create_app` and by the worker at start-up.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    pillow_heif.register_heif_opener()
    # Pillow allocates images in blocks of 16 MiB; glibc keeps freed blocks of that size in
    # the arena of the thread that freed them, so each request thread kept its largest decode
    # (four 49 MP uploads on four threads: 1.5 GB held). Blocks above glibc's largest mmap
    # threshold (32 MiB) are mapped, and unmapped when freed.
    pillow_core.set_block_size(PILLOW_BLOCK_BYTES)


def header_pixels(data: bytes) -> int:
    """Width x height as the header declares it, without decoding pixels (0 if unreadable:
    the full validation then says what is wrong)."""
    kind = high_depth.kind_of(data)
    if kind is not None:
        try:
            width, height = high_depth.header_size(data, kind)
        except high_depth.HighDepthRefusedError:
            return 0
        return width * height
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
            width, height = image.size
    except Exception:  # any refusal is `_decode`'s to report, with its proper code
        return 0
    return int(width * height)


def open_upload(data: bytes, max_pixels: int) -> Image.Image:
    """Decode an upload fully, with every check; the image is EXIF-transposed.

    Args:
        data: the uploaded file's bytes.
        max_pixels: largest accepted width * height.

    Returns:
        A loaded Pillow image in one of `service.codec.SUPPORTED_MODES`;
        `info["icc_profile"]` holds the ICC profile when the upload had one.

    Raises:
        ImageRefusedError: with the code the HTTP API answers with.
    """
    return _decode(data, max_pixels)[0]


def load_upload(data: bytes, max_pixels: int) -> DecodedImage:
    """Decode an upload of any accepted kind for restoration, with every check, upright.

    Raises:
        ImageRefusedError: with the code the HTTP API answers with.
    """
    kind = high_depth.kind_of(data)
    if kind is not None:
        return from_pixels(_read_high_depth(data, kind, max_pixels))
    return decode(open_upload(data, max_pixels))


def _read_high_depth(data: bytes, kind: high_depth.Kind, max_pixels: int) -> high_depth.Pixels:
    try:
        return high_depth.read(data, kind, max_pixels)
    except high_depth.HighDepthRefusedError as error:
        raise ImageRefusedError(error.code, error.message) from error


def inspect_upload(data: bytes, max_pixels: int) -> UploadInfo:
    """Validate an upload by decoding it (see `load_upload`); return its format and geometry.

    The size is the one after EXIF orientation, read from the tag: the image is decoded once
    and not transposed (a transposed copy would double the gateway's memory per upload).
    """
    if not data:
        raise ImageRefusedError(ErrorCode.INVALID_IMAGE, "the uploaded file is empty")
    kind = high_depth.kind_of(data)
    if kind is not None:
        pixels = _read_high_depth(data, kind, max_pixels)
        height, width = pixels.samples.shape[:2]
        return UploadInfo(pixels.format, width, height, pixels.mode)
    image, image_format = _decode(data, max_pixels, transpose=False)
    width, height = image.size
    if image.getexif().get(ORIENTATION_TAG) in _SWAPPING_ORIENTATIONS:
        width, height = height, width
    return UploadInfo(image_format, width, height, image.mode)


def _decode(data: bytes, max_pixels: int, transpose: bool = True) -> tuple[Image.Image, str]:
    if not data:
        raise ImageRefusedError(ErrorCode.INVALID_IMAGE, "the uploaded file is empty")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as error:
        if data.startswith(SIGNATURES) or data[8:12] == b"WEBP":
            # the signature of a format we take, and still unreadable: corrupt, not unsupported
            raise ImageRefusedError(
                ErrorCode.INVALID_IMAGE, "corrupt image: its header cannot be read"
            ) from error
        raise ImageRefusedError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE, "not a PNG, JPEG, WebP, TIFF or HEIC/HEIF image"
        ) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRefusedError(ErrorCode.TOO_MANY_PIXELS, _bomb(max_pixels)) from error
    except (OSError, SyntaxError, ValueError, struct.error) as error:
        raise ImageRefusedError(
            ErrorCode.INVALID_IMAGE, f"cannot read the image header: {error}"
        ) from error
    width, height = image.size
    if width * height > max_pixels:
        raise ImageRefusedError(
            ErrorCode.TOO_MANY_PIXELS,
            f"{width}x{height} = {width * height} pixels is over the limit of {max_pixels}",
        )
    refuse_unsupported_mode(image)
    image_format = image.format or "unknown"
    try:
        if transpose:
            transposed = upright(image)
        else:
            image.load()
            transposed = image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRefusedError(ErrorCode.TOO_MANY_PIXELS, _bomb(max_pixels)) from error
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as error:
        raise ImageRefusedError(
            ErrorCode.INVALID_IMAGE, f"corrupt or truncated image: {error}"
        ) from error
    return transposed, image_format


def _bomb(max_pixels: int) -> str:
    # Pillow's own message names twice the limit (where it turns a warning into an error)
    return f"the image decodes to more than the limit of {max_pixels} pixels"


def safe_stem(filename: str | None) -> str:
    """A file stem safe to put in Content-Disposition: letters, digits, '.', '_', '-'."""
    stem = (filename or "image").rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rsplit(".", 1)[0]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:100]
    return cleaned or "image"
