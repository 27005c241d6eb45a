"""bench/front_end_speed.py prints its tables (tiny model, one round)."""

from __future__ import annotations

import torch

from bench.front_end_speed import seam_table, speed_table
from model.config import model_preset
from model.restorer import build_restorer


def test_front_end_bench_tables() -> None:
    torch.manual_seed(0)
    restorer = build_restorer(model_preset("tiny-defocus")).eval()
    rows = speed_table(restorer, batch=2, tile_px=64, repeats=1, photo="kodim23", radius_px=3.0)
    assert rows[0].startswith("| 64 px tiles of kodim23 at r = 3 px, batch 2")
    assert len(rows) == 2 + 6 + 1
    assert rows[2].endswith("| 1.00 |")  # the network against itself
    assert rows[-1].startswith("| red and blue candidates kept |")
    seams = seam_table(restorer, "kodim23", 3.0)
    assert "tiled vs whole" in seams[3]
