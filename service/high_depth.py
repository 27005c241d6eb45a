"""16-bit colour PNG and TIFF (8 and 16 bit): the files Pillow cannot take without loss.

Pillow reduces 16-bit colour to 8 bits on opening, and its TIFF reader is a large attack
surface; these two kinds are read into numpy arrays instead: PNG with libpng (`imagecodecs`),
TIFF with `tifffile` (LZW, deflate, packbits, uncompressed; strips or tiles). Both are checked
from their headers first, before anything is decoded: pixel count (`max_pixels`), sample
layout (1 or 3 colour samples, optionally one alpha, unsigned 8 or 16 bit, contiguous or
planar) and, for tiled TIFF, the tile size. Only the first TIFF page is read.

Modes name what is carried, in Pillow's spelling where Pillow has one: `L`, `LA`, `RGB`,
`RGBA` (8 bit), `I;16` (16-bit gray), and `LA;16`, `RGB;16`, `RGBA;16` for 16-bit kinds Pillow
has no mode for. Orientation (TIFF tag 274, a PNG's eXIf chunk) is applied, the ICC profile
is kept.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import Literal

import imagecodecs
import numpy as np
import tifffile
from PIL import Image

from service.errors import ErrorCode

Kind = Literal["png16", "tiff"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
# PNG colour types at 16 bits Pillow would truncate: RGB, gray + alpha, RGBA
PNG16_COLOUR_TYPES = {2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}
ORIENTATION_TAG = 274
ICC_TAG = 34675
MAX_ICC_BYTES = 4 * 1024 * 1024
_MODES = {  # (colour samples, alpha, bits) -> mode
    (1, False, 8): "L",
    (1, True, 8): "LA",
    (3, False, 8): "RGB",
    (3, True, 8): "RGBA",
    (1, False, 16): "I;16",
    (1, True, 16): "LA;16",
    (3, False, 16): "RGB;16",
    (3, True, 16): "RGBA;16",
}


class HighDepthRefusedError(ValueError):
    """A file of these kinds that is refused; `code` is the API's error code for it."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Pixels:
    """A decoded image: samples (H, W, C) as uint8 or uint16, its mode and ICC profile."""

    samples: np.ndarray
    mode: str
    icc_profile: bytes | None
    format: str


def kind_of(data: bytes) -> Kind | None:
    """`png16` for a 16-bit colour PNG, `tiff` for any TIFF, else None (Pillow's to read)."""
    if data.startswith(TIFF_SIGNATURES):
        return "tiff"
    if data.startswith(PNG_SIGNATURE) and len(data) >= 26 and data[12:16] == b"IHDR":
        bit_depth, colour_type = struct.unpack(">BB", data[24:26])
        if bit_depth == 16 and colour_type in PNG16_COLOUR_TYPES:
            return "png16"
    return None


def header_size(data: bytes, kind: Kind) -> tuple[int, int]:
    """(width, height) as stored, from the header alone.

    Raises:
        HighDepthRefusedError: unreadable header (400) or a layout not taken (415).
    """
    if kind == "png16":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    page = _first_page(data)
    return int(page.imagewidth), int(page.imagelength)


def read(data: bytes, kind: Kind, max_pixels: int) -> Pixels:
    """Check the header, then decode, orient and return the pixels.

    Raises:
        HighDepthRefusedError: with the code the HTTP API answers with.
    """
    width, height = header_size(data, kind)
    if width * height > max_pixels:
        raise HighDepthRefusedError(
            ErrorCode.TOO_MANY_PIXELS,
            f"{width}x{height} = {width * height} pixels is over the limit of {max_pixels}",
        )
    if kind == "png16":
        return _read_png16(data)
    return _read_tiff(data, max_pixels)


def _read_png16(data: bytes) -> Pixels:
    colour_type = data[25]
    try:
        samples = imagecodecs.png_decode(data)
    except Exception as error:  # libpng's errors: corrupt or truncated
        raise HighDepthRefusedError(
            ErrorCode.INVALID_IMAGE, f"corrupt or truncated PNG: {error}"
        ) from error
    if samples.ndim == 2:
        samples = samples[..., None]
    icc, exif = _png_chunks(data)
    orientation = Image.Exif()
    if exif:
        orientation.load(exif)
    oriented = orient(samples, int(orientation.get(ORIENTATION_TAG, 1) or 1))
    return Pixels(oriented, PNG16_COLOUR_TYPES[colour_type], icc, "PNG")


def _png_chunks(data: bytes) -> tuple[bytes | None, bytes | None]:
    """The ICC profile (iCCP, decompressed) and the EXIF (eXIf) of a PNG, read up to IDAT."""
    icc: bytes | None = None
    exif: bytes | None = None
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, name = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        if name == b"IDAT":
            break
        if name == b"iCCP" and b"\x00" in body:
            compressed = body[body.index(b"\x00") + 2 :]
            inflater = zlib.decompressobj()
            try:
                profile = inflater.decompress(compressed, MAX_ICC_BYTES)
            except zlib.error:
                profile = b""
            icc = profile if profile and not inflater.unconsumed_tail else None
        elif name == b"eXIf":
            exif = body
        position += 12 + length
    return icc, exif


def _first_page(data: bytes) -> tifffile.TiffPage:
    try:
        tiff = tifffile.TiffFile(io.BytesIO(data))
        page = tiff.pages.first
    except Exception as error:  # tifffile's errors: not a readable TIFF structure
        raise HighDepthRefusedError(
            ErrorCode.INVALID_IMAGE, f"corrupt TIFF header: {error}"
        ) from error
    assert isinstance(page, tifffile.TiffPage)
    return page


def _read_tiff(data: bytes, max_pixels: int) -> Pixels:
    page = _first_page(data)
    colour, alpha, bits = _tiff_layout(page)
    if page.is_tiled and page.tilewidth * page.tilelength > max_pixels:
        raise HighDepthRefusedError(
            ErrorCode.TOO_MANY_PIXELS, "the TIFF's tiles are over the pixel limit"
        )
    try:
        samples = page.asarray()
    except Exception as error:  # codec errors, truncated strips or tiles
        raise HighDepthRefusedError(
            ErrorCode.INVALID_IMAGE, f"corrupt or truncated TIFF: {error}"
        ) from error
    if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE and samples.ndim == 3:
        samples = np.moveaxis(samples, 0, -1)
    if samples.ndim == 2:
        samples = samples[..., None]
    if page.photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        samples = np.iinfo(samples.dtype).max - samples
    samples = samples[..., : colour + int(alpha)]
    orientation = page.tags.get(ORIENTATION_TAG)
    icc = page.tags.get(ICC_TAG)
    return Pixels(
        orient(samples, int(orientation.value) if orientation else 1),
        _MODES[(colour, alpha, bits)],
        bytes(icc.value) if icc else None,
        "TIFF",
    )


def _tiff_layout(page: tifffile.TiffPage) -> tuple[int, bool, int]:
    """(colour samples, has alpha, bits) of a TIFF page the service takes, else refuse."""
    photometric = page.photometric
    colour_samples: dict[int, int] = {
        tifffile.PHOTOMETRIC.MINISBLACK: 1,
        tifffile.PHOTOMETRIC.MINISWHITE: 1,
        tifffile.PHOTOMETRIC.RGB: 3,
    }
    colour = colour_samples.get(int(photometric))
    bits = page.bitspersample
    if page.sampleformat != tifffile.SAMPLEFORMAT.UINT or bits not in (8, 16):
        raise HighDepthRefusedError(
            ErrorCode.UNSUPPORTED_BIT_DEPTH,
            f"TIFF of {bits}-bit {getattr(page.sampleformat, 'name', '')} samples is not"
            " supported (unsigned 8 or 16 bit)",
        )
    extra = page.samplesperpixel - (colour or 0)
    if colour is None or extra not in (0, 1, 2):
        raise HighDepthRefusedError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"TIFF of {page.samplesperpixel} samples, photometric"
            f" {getattr(photometric, 'name', photometric)}, is not supported"
            " (gray or RGB, with or without alpha)",
        )
    return colour, extra > 0, bits


def orient(samples: np.ndarray, orientation: int) -> np.ndarray:
    """(H, W, C) as EXIF/TIFF orientation `orientation` (1-8) says it should be shown."""
    turned = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: np.rot90(a, k=2).transpose(1, 0, 2),
        8: lambda a: np.rot90(a, k=1),
    }.get(orientation)
    return np.ascontiguousarray(turned(samples)) if turned else samples


def encode_png16(samples: np.ndarray, icc_profile: bytes | None, level: int) -> bytes:
    """A 16-bit PNG of (H, W, C) uint16 samples, with the ICC profile as an iCCP chunk."""
    encoded = bytes(imagecodecs.png_encode(samples, level=level))
    if not icc_profile:
        return encoded
    body = b"icc\x00\x00" + zlib.compress(icc_profile)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body
    chunk += struct.pack(">I", zlib.crc32(b"iCCP" + body) & 0xFFFFFFFF)
    end_of_ihdr = len(PNG_SIGNATURE) + 8 + 13 + 4
    return encoded[:end_of_ihdr] + chunk + encoded[end_of_ihdr:]


def encode_tiff(samples: np.ndarray, icc_profile: bytes | None) -> bytes:
    """A deflate-compressed TIFF of (H, W, C) uint8 or uint16 samples (C: 1-4)."""
    channels = samples.shape[2]
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        samples if channels > 1 else samples[..., 0],
        photometric="rgb" if channels >= 3 else "minisblack",
        extrasamples=["unassalpha"] if channels in (2, 4) else None,
        compression="zlib",
        iccprofile=icc_profile,
    )
    return buffer.getvalue()
