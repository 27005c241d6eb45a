"""The one image codec: encoded bytes -> `DecodedImage` (float RGB + what is carried) -> bytes.

Used by the upload validator (`service.uploads`, which adds the gateway's limits and bomb
guards), the worker and the local `swintormer deblur`, so the service and the local command
return the same pixels for the same file. Pillow and numpy only: the gateway imports it.

The network restores RGB in [0, 1]. What is not RGB is carried around it and put back:
- EXIF orientation is applied on decoding (the result is stored upright, without the tag);
- alpha is split off before restoration and re-attached unchanged;
- grayscale (`L`, `1`) is restored as gray RGB and returned as `L`;
- 16-bit images (gray `I;16`, and the colour PNG and TIFF `service.high_depth` reads, which
  Pillow would reduce to 8 bits) are restored at full precision and returned at 16 bits in
  PNG and TIFF (JPEG and WebP cannot hold 16 bits: those outputs are 8-bit);
- TIFF (8 or 16 bit, gray or RGB, with or without alpha) and HEIC/HEIF (through pillow-heif)
  are read too; results can be TIFF;
- CMYK is restored in RGB (Pillow's conversion) and returned as CMYK when the output is
  JPEG, as RGB otherwise (PNG and WebP have no CMYK); its ICC profile, which describes CMYK,
  is only kept on CMYK output;
- palette images are restored in RGB(A) and returned as RGB(A), not re-quantised; transparency
  given as a PNG `tRNS` chunk (palette, gray or RGB) is kept as an alpha channel.
The ICC profile of the upload is passed to the encoder, so colours keep their meaning.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from service import high_depth
from service.errors import ErrorCode
from service.schemas import DEEP_FORMATS, OutputFormat

# 16-bit grayscale as Pillow opens it, depending on version and byte order
GRAY16_MODES = frozenset({"I;16", "I;16B", "I;16L", "I"})
# 16-bit modes Pillow has no name for (`service.high_depth` reads them)
DEEP_COLOUR_MODES = frozenset({"LA;16", "RGB;16", "RGBA;16"})
# Pillow modes the codec restores and re-encodes
SUPPORTED_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK"}) | GRAY16_MODES
_PIL_FORMAT = {OutputFormat.PNG: "PNG", OutputFormat.JPEG: "JPEG", OutputFormat.WEBP: "WEBP"}
_SUFFIX_FORMAT = {
    ".png": OutputFormat.PNG,
    ".jpg": OutputFormat.JPEG,
    ".jpeg": OutputFormat.JPEG,
    ".webp": OutputFormat.WEBP,
    ".tif": OutputFormat.TIFF,
    ".tiff": OutputFormat.TIFF,
}


class ImageRefusedError(ValueError):
    """An image the codec will not take; `code` is the API's error code for it."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DecodedImage:
    """An image split into what the network restores and what is carried around it."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]
    alpha: np.ndarray | None  # (H, W) uint8, or uint16 for 16-bit inputs, unchanged
    mode: str  # the input's Pillow mode
    icc_profile: bytes | None

    @property
    def is_high_depth(self) -> bool:
        """16 bits per sample: restored in float32 whatever the precision setting (bf16 keeps
        8 significant bits, ~11 levels of 65535 on average)."""
        return self.mode in GRAY16_MODES or self.mode in DEEP_COLOUR_MODES


def refuse_unsupported_mode(image: Image.Image) -> None:
    """Raise `ImageRefusedError` for a Pillow mode outside `SUPPORTED_MODES`."""
    if image.mode not in SUPPORTED_MODES:
        raise ImageRefusedError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"images of Pillow mode {image.mode} are not supported",
        )


def upright(image: Image.Image) -> Image.Image:
    """Load an opened image and apply its EXIF orientation, keeping its ICC profile.

    Raises whatever Pillow raises for corrupt or truncated data (OSError, SyntaxError,
    ValueError, struct.error, EOFError) and its decompression-bomb error.
    """
    icc_profile = image.info.get("icc_profile")
    image.load()
    transposed = ImageOps.exif_transpose(image)
    if icc_profile:
        transposed.info["icc_profile"] = icc_profile
    return transposed


def read_file(path: Path) -> DecodedImage:
    """Read a local image file (any format Pillow reads, 16-bit colour PNG, TIFF) for
    restoration, upright.

    Pillow's own decompression-bomb limit applies; the service's stricter upload limits are
    `service.uploads.load_upload`'s.

    Raises:
        ImageRefusedError: an unsupported mode or layout, or a corrupt file.
    """
    data = path.read_bytes()
    kind = high_depth.kind_of(data)
    if kind is not None:
        try:
            return from_pixels(high_depth.read(data, kind, Image.MAX_IMAGE_PIXELS or 2**62))
        except high_depth.HighDepthRefusedError as error:
            raise ImageRefusedError(error.code, error.message) from error
    with Image.open(io.BytesIO(data)) as opened:
        refuse_unsupported_mode(opened)
        return decode(upright(opened))


def from_pixels(pixels: high_depth.Pixels) -> DecodedImage:
    """Split the samples `service.high_depth` read for restoration, like `decode`."""
    samples = pixels.samples
    scale = float(np.iinfo(samples.dtype).max)
    colour = samples.shape[2] - (1 if pixels.mode in ("LA", "RGBA", "LA;16", "RGBA;16") else 0)
    alpha = samples[..., colour].copy() if colour < samples.shape[2] else None
    rgb = samples[..., :colour].astype(np.float32) / scale
    if colour == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    return DecodedImage(np.ascontiguousarray(rgb), alpha, pixels.mode, pixels.icc_profile)


def decode(image: Image.Image) -> DecodedImage:
    """Split a loaded, upright Pillow image (see `upright`) for restoration."""
    mode = image.mode
    icc = image.info.get("icc_profile") or None
    alpha: np.ndarray | None = None
    if mode in GRAY16_MODES:
        gray = np.asarray(image, dtype=np.float32) / 65535.0  # (H, W)
        rgb = np.repeat(np.clip(gray, 0.0, 1.0)[..., None], 3, axis=2)
        return DecodedImage(rgb, None, mode, icc)
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("L", "RGB") and "transparency" in image.info:  # a tRNS colour key
        image = image.convert("LA" if mode == "L" else "RGBA")
    if image.mode in ("RGBA", "LA"):
        alpha = np.asarray(image.getchannel("A"), dtype=np.uint8).copy()
    rgb_image = image.convert("RGB")  # L, 1, LA, RGBA, CMYK -> RGB
    rgb = np.asarray(rgb_image, dtype=np.float32) / 255.0
    return DecodedImage(rgb, alpha, mode, icc)


def output_mode(input_mode: str, output_format: OutputFormat, has_alpha: bool = False) -> str:
    """The mode of the result for an input mode and output format (TIFF as PNG).

    `has_alpha`: the decoded input carries alpha (`DecodedImage.alpha`), as a palette or a
    colour key can give to modes without an alpha channel of their own.
    """
    deep = output_format in DEEP_FORMATS
    if input_mode in GRAY16_MODES:
        return "I;16" if deep else "L"
    if input_mode in DEEP_COLOUR_MODES:
        if deep:
            return input_mode
        if input_mode == "LA;16" and output_format is OutputFormat.JPEG:
            return "L"
        return _drop_alpha_if_jpeg("RGB" if input_mode == "RGB;16" else "RGBA", output_format)
    if output_format is OutputFormat.TIFF:
        output_format = OutputFormat.PNG
    if input_mode in ("1", "L") and not has_alpha:
        return "L"
    if input_mode in ("L", "LA") and output_format is OutputFormat.PNG:
        return "LA"
    if input_mode == "CMYK":
        return "CMYK" if output_format is OutputFormat.JPEG else "RGB"
    if input_mode in ("RGBA", "PA", "LA") or has_alpha:
        return _drop_alpha_if_jpeg("RGBA", output_format)
    return "RGB"


def _drop_alpha_if_jpeg(mode: str, output_format: OutputFormat) -> str:
    # JPEG has no alpha channel: the restored colours are returned without it
    return "RGB" if output_format is OutputFormat.JPEG else mode


def format_for_suffix(path: Path) -> OutputFormat | None:
    """The output format a file name asks for (`.png`, `.jpg`/`.jpeg`, `.webp`), else None."""
    return _SUFFIX_FORMAT.get(path.suffix.lower())


def encode(
    restored: np.ndarray,
    decoded: DecodedImage,
    output_format: OutputFormat,
    quality: int = 95,
    png_compress_level: int = 1,
) -> tuple[bytes, str]:
    """Encode a restored image the way its input was (see the module docstring).

    Args:
        restored: (H, W, 3) float32 in [0, 1], the network's output for `decoded.rgb`.
        decoded: the input it was restored from (alpha, mode, ICC profile).
        output_format: PNG, JPEG, WebP or TIFF.
        quality: JPEG/WebP quality, 1..100.
        png_compress_level: zlib level for PNG (1 is ~2x faster than 6 for a few % size).

    Returns:
        The encoded bytes and the Pillow mode they hold.
    """
    mode = output_mode(decoded.mode, output_format, decoded.alpha is not None)
    clipped = np.clip(restored, 0.0, 1.0)
    keep_icc = decoded.icc_profile is not None and (decoded.mode != "CMYK" or mode == "CMYK")
    icc = decoded.icc_profile if keep_icc else None
    if output_format is OutputFormat.TIFF or mode in DEEP_COLOUR_MODES:
        samples = _samples(clipped, decoded, mode)
        if output_format is OutputFormat.TIFF:
            return high_depth.encode_tiff(samples, icc), mode
        return high_depth.encode_png16(samples, icc, png_compress_level), mode
    if mode == "I;16":
        gray16 = np.rint(clipped.mean(axis=2) * 65535.0).astype(np.uint16)
        image = Image.fromarray(gray16)
    else:
        image = Image.fromarray(np.rint(clipped * 255.0).astype(np.uint8), "RGB")
        if mode in ("L", "LA"):
            image = image.convert("L")
        elif mode == "CMYK":
            image = image.convert("CMYK")
        if mode in ("LA", "RGBA") and decoded.alpha is not None:
            image.putalpha(Image.fromarray(_alpha8(decoded.alpha), "L"))
    params: dict[str, object] = {}
    if icc:
        params["icc_profile"] = icc
    if output_format is OutputFormat.PNG:
        params["compress_level"] = png_compress_level
    else:
        params["quality"] = quality
    buffer = io.BytesIO()
    image.save(buffer, _PIL_FORMAT[output_format], **params)
    return buffer.getvalue(), image.mode


def _samples(restored: np.ndarray, decoded: DecodedImage, mode: str) -> np.ndarray:
    """(H, W, C) integer samples of `mode` (16 bit for `;16` and `I;16`) from restored RGB."""
    deep = mode.endswith(";16")
    top = 65535.0 if deep else 255.0
    gray = mode.startswith(("L", "I"))
    colour = restored.mean(axis=2, keepdims=True) if gray else restored
    samples = np.rint(colour * top).astype(np.uint16 if deep else np.uint8)
    if mode.startswith(("LA", "RGBA")) and decoded.alpha is not None:
        alpha = decoded.alpha
        if alpha.dtype != samples.dtype:  # an 8-bit alpha into 16 bits, or the reverse
            alpha = np.rint(alpha.astype(np.float32) * top / np.iinfo(alpha.dtype).max)
        samples = np.concatenate([samples, alpha.astype(samples.dtype)[..., None]], axis=2)
    # the network's output is a permuted view, and ufuncs keep its layout; the encoders want
    # rows in order
    return np.ascontiguousarray(samples)


def _alpha8(alpha: np.ndarray) -> np.ndarray:
    """An alpha channel as 8 bits (a 16-bit input's alpha, in an 8-bit output)."""
    if alpha.dtype == np.uint8:
        return alpha
    narrowed: np.ndarray = np.rint(alpha.astype(np.float32) / 257.0).astype(np.uint8)
    return narrowed
