"""Validation and safe decoding of uploaded images (Pillow), shared by the gateway and the worker.

The gateway calls `inspect_upload` before anything is queued, so a client learns at once
that an upload is corrupt, too big or of an unsupported kind; the worker calls `open_upload`
on the same bytes to decode them the same way.

What is accepted and how:
- PNG, JPEG and WebP only (`Image.open(..., formats=...)`; nothing else is even tried).
- The pixel count is checked from the header before any pixel is decoded; Pillow's own
  decompression-bomb check is set to the same limit and its warning is an error.
- Truncated or corrupt data fails at `load()` (Pillow's LOAD_TRUNCATED_IMAGES stays off).
- EXIF orientation is applied; the ICC profile is kept (the worker passes it to the encoder).
- 16-bit grayscale PNG stays 16-bit end to end. 16-bit colour PNG is refused: Pillow would
  silently reduce it to 8 bits, which we will not do behind a client's back.
"""

from __future__ import annotations

import io
import re
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import ErrorCode

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP")
# Pillow modes the worker knows how to restore and re-encode.
# 16-bit grayscale as Pillow opens it, depending on version and byte order
GRAY16_MODES = frozenset({"I;16", "I;16B", "I;16L", "I"})
SUPPORTED_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK"}) | GRAY16_MODES
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types 2 (RGB), 4 (gray + alpha), 6 (RGBA): Pillow reduces these to 8 bits at 16.
_PNG_COLOUR_TYPES_TRUNCATED_AT_16 = {2: "RGB", 4: "grayscale+alpha", 6: "RGBA"}


class UploadError(ValueError):
    """An upload that cannot be accepted; `code` says why (see service.errors)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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


def _refuse_16bit_colour_png(data: bytes) -> None:
    # IHDR is the first chunk: signature(8) length(4) "IHDR"(4) width(4) height(4) depth(1) type(1)
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 26 or data[12:16] != b"IHDR":
        return
    bit_depth, colour_type = struct.unpack(">BB", data[24:26])
    if bit_depth == 16 and colour_type in _PNG_COLOUR_TYPES_TRUNCATED_AT_16:
        kind = _PNG_COLOUR_TYPES_TRUNCATED_AT_16[colour_type]
        raise UploadError(
            ErrorCode.UNSUPPORTED_BIT_DEPTH,
            f"16-bit {kind} PNG is not supported (it would lose precision); "
            "send an 8-bit PNG, or 16-bit grayscale, which is kept 16-bit",
        )


def open_upload(data: bytes, max_pixels: int) -> Image.Image:
    """Decode an upload fully, with every check; the image is EXIF-transposed.

    Args:
        data: the uploaded file's bytes.
        max_pixels: largest accepted width * height.

    Returns:
        A loaded Pillow image in one of `SUPPORTED_MODES`; `info["icc_profile"]` holds the
        ICC profile when the upload had one.

    Raises:
        UploadError: with the code the HTTP API answers with.
    """
    return _decode(data, max_pixels)[0]


def inspect_upload(data: bytes, max_pixels: int) -> UploadInfo:
    """Validate an upload by decoding it (see `open_upload`); return its format and geometry."""
    image, image_format = _decode(data, max_pixels)
    return UploadInfo(image_format, image.width, image.height, image.mode)


def _decode(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    if not data:
        raise UploadError(ErrorCode.INVALID_IMAGE, "the uploaded file is empty")
    _refuse_16bit_colour_png(data)
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as error:
        raise UploadError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE, "not a PNG, JPEG or WebP image"
        ) from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UploadError(ErrorCode.TOO_MANY_PIXELS, str(error)) from error
    except (OSError, SyntaxError, ValueError, struct.error) as error:
        raise UploadError(
            ErrorCode.INVALID_IMAGE, f"cannot read the image header: {error}"
        ) from error
    width, height = image.size
    if width * height > max_pixels:
        raise UploadError(
            ErrorCode.TOO_MANY_PIXELS,
            f"{width}x{height} = {width * height} pixels is over the limit of {max_pixels}",
        )
    if image.mode not in SUPPORTED_MODES:
        raise UploadError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"images of Pillow mode {image.mode} are not supported",
        )
    image_format = image.format or "unknown"
    icc_profile = image.info.get("icc_profile")
    try:
        image.load()
        transposed = ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UploadError(ErrorCode.TOO_MANY_PIXELS, str(error)) from error
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as error:
        raise UploadError(
            ErrorCode.INVALID_IMAGE, f"corrupt or truncated image: {error}"
        ) from error
    if icc_profile:
        transposed.info["icc_profile"] = icc_profile
    return transposed, image_format


def safe_stem(filename: str | None) -> str:
    """A file stem safe to put in Content-Disposition: letters, digits, '.', '_', '-'."""
    stem = (filename or "image").rsplit("/", 1)[-1].rsplit("\\", 1)[-1].rsplit(".", 1)[0]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:100]
    return cleaned or "image"
