"""The defocus map's PNG (fixed scale, 16-bit grey) and the summary the job status shows."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service.defocus_map import (
    IN_FOCUS_BELOW_PX,
    LEVELS_PER_STEP,
    MAP_STEP_PX,
    SCALE_TEXT_KEY,
    decode_defocus_map,
    encode_defocus_map,
    summarize,
)


def test_png_is_16_bit_grey_at_the_documented_scale() -> None:
    radius = np.random.default_rng(0).uniform(0, 14, size=(37, 53)).astype(np.float32)
    data = encode_defocus_map(radius)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.mode.startswith("I")
        assert image.size == (53, 37)
        assert image.text[SCALE_TEXT_KEY] == "0.001"  # type: ignore[attr-defined]
        levels = np.asarray(image, dtype=np.float64)
    # grey level v is v / 1000 px, whoever reads the file; radii are rounded to 0.01 px
    assert MAP_STEP_PX == 0.01
    assert LEVELS_PER_STEP == 10
    assert (levels % 10 == 0).all()
    assert np.abs(levels * 0.001 - radius).max() <= MAP_STEP_PX / 2 + 1e-6
    assert np.abs(decode_defocus_map(data) - radius).max() <= MAP_STEP_PX / 2 + 1e-6


def test_out_of_range_radii_are_clipped() -> None:
    radius = np.array([[-0.2, 0.0, 70.0]], np.float32)
    assert decode_defocus_map(encode_defocus_map(radius)).tolist() == [
        [0.0, 0.0, pytest.approx(65.535)]
    ]


def test_only_a_2d_map_is_encoded() -> None:
    with pytest.raises(ValueError, match="radius map"):
        encode_defocus_map(np.zeros((4, 4, 1), np.float32))


def test_summary_percentiles_and_in_focus_share() -> None:
    radius = np.concatenate([np.zeros(60), np.full(30, 2.0), np.full(10, 8.0)]).reshape(10, 10)
    blur = summarize(radius)
    assert blur.median_radius_px == 0.0
    assert blur.p90_radius_px == pytest.approx(2.6)  # between the 90th and 91st values
    assert blur.max_radius_px == 8.0
    assert blur.in_focus_fraction == 0.6
    assert blur.in_focus_below_px == IN_FOCUS_BELOW_PX
    uniform = summarize(np.full((3, 3), 3.25))
    assert (uniform.median_radius_px, uniform.p90_radius_px) == (3.25, 3.25)
    assert uniform.in_focus_fraction == 0.0
