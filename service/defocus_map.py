"""The estimated defocus map as users get it: a 16-bit grey PNG at a fixed scale, and its summary.

A model with a defocus front end estimates, for every pixel, the radius of the disk that blurred
it (0 = in focus). The worker stores that map beside the result and reports a summary in the job
status; `GET /jobs/{id}/defocus-map` and `swintormer deblur --defocus-map` hand out the PNG.

The PNG's scale is fixed, so a client needs nothing but this sentence to read it: grey level
`v` (16 bits, 0..65535) means a radius of `v / 1000` pixels (`PX_PER_LEVEL` = 0.001 px per
level), radii above 65.535 px read 65535. Radii are stored rounded to `MAP_STEP_PX` (0.01 px,
every tenth level): the estimate errs by 0.5-1 px, and the finer levels cost a third of the
PNG's size (a 12 MP photo's map: 13.6 MB at 0.001 px, 8.8 MB at 0.01 px, measured on
2026-12-02), which Redis holds beside every result. The PNG also carries the scale as a text chunk
(`defocus:px_per_level`), and the HTTP response as the header `X-Defocus-Px-Per-Level`. The map
has the size and orientation of the result image.

Pillow and numpy only: the gateway imports the contract this module belongs to.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, PngImagePlugin

from service.schemas import BlurEstimate

# Radius in pixels of one grey level of the map's PNG.
PX_PER_LEVEL = 0.001
# The map's radii are rounded to this (a whole number of levels; see the module docstring).
MAP_STEP_PX = 0.01
LEVELS_PER_STEP = round(MAP_STEP_PX / PX_PER_LEVEL)
MAX_LEVEL = 65535
# A pixel whose estimated radius is below this counts as in focus (a disk of radius 0.5 px is
# within one pixel: no visible blur).
IN_FOCUS_BELOW_PX = 0.5
# PNG text chunk and HTTP header that repeat the scale.
SCALE_TEXT_KEY = "defocus:px_per_level"
SCALE_HEADER = "X-Defocus-Px-Per-Level"


def summarize(radius_px: np.ndarray) -> BlurEstimate:
    """The blur a user reads in the job status.

    Args:
        radius_px: (H, W) estimated radius in pixels.
    """
    values = np.asarray(radius_px, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("an empty defocus map has no summary")
    median, p90 = np.percentile(values, [50, 90])
    return BlurEstimate(
        median_radius_px=round(float(median), 3),
        p90_radius_px=round(float(p90), 3),
        max_radius_px=round(float(values.max()), 3),
        in_focus_fraction=round(float(np.mean(values < IN_FOCUS_BELOW_PX)), 4),
        in_focus_below_px=IN_FOCUS_BELOW_PX,
    )


def to_levels(radius_px: np.ndarray) -> np.ndarray:
    """(H, W) radius in pixels -> (H, W) uint16 grey levels at `PX_PER_LEVEL`, the radius
    rounded to `MAP_STEP_PX` (clipped to the levels' range)."""
    steps: np.ndarray = np.rint(np.asarray(radius_px, dtype=np.float64) / MAP_STEP_PX)
    levels: np.ndarray = np.clip(steps * LEVELS_PER_STEP, 0, MAX_LEVEL)
    return levels.astype(np.uint16)


def encode_defocus_map(radius_px: np.ndarray, compress_level: int = 1) -> bytes:
    """(H, W) radius in pixels -> the 16-bit grey PNG described in the module docstring."""
    if radius_px.ndim != 2:
        raise ValueError(f"expected an (H, W) radius map, got shape {radius_px.shape}")
    image = Image.fromarray(to_levels(radius_px))  # uint16: mode I;16
    text = PngImagePlugin.PngInfo()
    text.add_text(SCALE_TEXT_KEY, f"{PX_PER_LEVEL}")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=text, compress_level=compress_level)
    return buffer.getvalue()


def decode_defocus_map(data: bytes) -> np.ndarray:
    """The PNG of `encode_defocus_map` -> (H, W) float32 radius in pixels."""
    with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
        if image.mode not in ("I;16", "I;16B", "I;16L", "I"):
            raise ValueError(f"a defocus map is 16-bit grey, not {image.mode}")
        scale = float(image.text.get(SCALE_TEXT_KEY, PX_PER_LEVEL))  # type: ignore[attr-defined]
        levels = np.asarray(image, dtype=np.float64)
    return (levels * scale).astype(np.float32)
