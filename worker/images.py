"""Image codecs of the worker: Pillow image -> float RGB array -> encoded result bytes.

The network restores RGB in [0, 1]. What is not RGB is carried around it and put back:
- alpha is split off before restoration and re-attached unchanged;
- grayscale (`L`, `1`) is restored as gray RGB and returned as `L`;
- 16-bit grayscale (`I;16`, `I`) is restored at full precision and returned as 16-bit PNG
  (JPEG and WebP cannot hold 16 bits: those outputs are 8-bit `L`);
- CMYK is restored in RGB (Pillow's conversion) and returned as CMYK when the output is
  JPEG, as RGB otherwise (PNG and WebP have no CMYK); its ICC profile, which describes CMYK,
  is only kept on CMYK output;
- palette images are restored in RGB(A) and returned as RGB(A), not re-quantised.
The ICC profile of the upload is passed to the encoder, so colours keep their meaning.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from service.schemas import OutputFormat
from service.uploads import GRAY16_MODES

_PIL_FORMAT = {OutputFormat.PNG: "PNG", OutputFormat.JPEG: "JPEG", OutputFormat.WEBP: "WEBP"}


@dataclass(frozen=True)
class DecodedImage:
    """An upload split into what the network restores and what is carried around it."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]
    alpha: np.ndarray | None  # (H, W) uint8, unchanged from the upload
    mode: str  # the upload's Pillow mode
    icc_profile: bytes | None


def decode(image: Image.Image) -> DecodedImage:
    """Split a loaded Pillow image (see `service.uploads.open_upload`) for restoration."""
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
    if image.mode in ("RGBA", "LA"):
        alpha = np.asarray(image.getchannel("A"), dtype=np.uint8).copy()
    rgb_image = image.convert("RGB")  # L, 1, LA, RGBA, CMYK -> RGB
    rgb = np.asarray(rgb_image, dtype=np.float32) / 255.0
    return DecodedImage(rgb, alpha, mode, icc)


def output_mode(input_mode: str, output_format: OutputFormat) -> str:
    """The Pillow mode of the result for an input mode and output format."""
    if input_mode in GRAY16_MODES:
        return "I;16" if output_format is OutputFormat.PNG else "L"
    if input_mode in ("1", "L"):
        return "L"
    if input_mode == "LA" and output_format is OutputFormat.PNG:
        return "LA"
    if input_mode == "CMYK":
        return "CMYK" if output_format is OutputFormat.JPEG else "RGB"
    if input_mode in ("RGBA", "PA", "LA"):
        return _drop_alpha_if_jpeg("RGBA", output_format)
    return "RGB"


def _drop_alpha_if_jpeg(mode: str, output_format: OutputFormat) -> str:
    # JPEG has no alpha channel: the restored colours are returned without it
    return "RGB" if output_format is OutputFormat.JPEG else mode


def encode(
    restored: np.ndarray,
    decoded: DecodedImage,
    output_format: OutputFormat,
    quality: int = 95,
    png_compress_level: int = 1,
) -> tuple[bytes, str]:
    """Encode a restored image the way its upload was (see the module docstring).

    Args:
        restored: (H, W, 3) float32 in [0, 1], the network's output for `decoded.rgb`.
        decoded: the upload it was restored from (alpha, mode, ICC profile).
        output_format: PNG, JPEG or WebP.
        quality: JPEG/WebP quality, 1..100.
        png_compress_level: zlib level for PNG (1 is ~2x faster than 6 for a few % size).

    Returns:
        The encoded bytes and the Pillow mode they hold.
    """
    mode = output_mode(decoded.mode, output_format)
    clipped = np.clip(restored, 0.0, 1.0)
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
            image.putalpha(Image.fromarray(decoded.alpha, "L"))
    params: dict[str, object] = {}
    keep_icc = decoded.icc_profile is not None and (decoded.mode != "CMYK" or mode == "CMYK")
    if keep_icc:
        params["icc_profile"] = decoded.icc_profile
    if output_format is OutputFormat.PNG:
        params["compress_level"] = png_compress_level
    else:
        params["quality"] = quality
    buffer = io.BytesIO()
    image.save(buffer, _PIL_FORMAT[output_format], **params)
    return buffer.getvalue(), image.mode


def to_tensor(rgb: np.ndarray, device: torch.device) -> Tensor:
    """(H, W, 3) float32 array -> (1, 3, H, W) tensor on `device`."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)


def to_array(image: Tensor) -> np.ndarray:
    """(1, 3, H, W) tensor -> (H, W, 3) float32 array on the CPU."""
    return image[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
