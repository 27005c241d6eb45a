"""The fused-attention comparison times the network's shapes and prints a row per level."""

from __future__ import annotations

import pytest

from bench.fused_attention import level_shapes, main


def test_level_shapes_are_the_window_attention_of_the_preset() -> None:
    # lite: dim 24, 8 px windows, heads (1, 2, 4, 8): the spatial branch has C/2 channels
    assert level_shapes("lite", tiles=4, tile_px=256) == [
        (1, 4 * 32 * 32, 1, 64, 12),
        (2, 4 * 16 * 16, 2, 64, 12),
        (3, 4 * 8 * 8, 4, 64, 12),
        (4, 4 * 4 * 4, 8, 64, 12),
    ]


def test_main_prints_one_row_per_level(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--presets", "tiny", "--tiles", "1", "--repeats", "1", "--threads", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny |")]
    assert len(rows) == 4
    assert all(float(row.split("|")[-2]) > 0 for row in rows)
