"""Runtime: tiled restoration and the OOM fallback to smaller tiles.

The OOM test uses a runtime whose batch function raises `torch.cuda.OutOfMemoryError`
when a batch is too large: the one place a fake is justified, since CPU tests cannot run
out of GPU memory. Everything around it (tiling, stitching, retries) is the real code.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor

from model.tiling import TileSettings
from service.config import Settings
from worker.runtime import (
    MIN_TILE_PX,
    OutOfMemoryAtMinimumError,
    RestoreRequest,
    Runtime,
    smaller_tiles,
)


class MemoryBoundRuntime(Runtime):
    """Identity 'restorer' that runs out of memory above `budget_px` pixels per batch."""

    def __init__(self, budget_px: int) -> None:
        super().__init__(Settings())
        self.budget_px = budget_px
        self.batches: list[tuple[int, ...]] = []

    @property
    def size_multiple(self) -> int:
        return 8

    def restore_batch(
        self, tiles: Tensor, request: RestoreRequest, generator: torch.Generator | None
    ) -> Tensor:
        self.batches.append(tuple(tiles.shape))
        if tiles.shape[0] * tiles.shape[2] * tiles.shape[3] > self.budget_px:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return tiles[:, :3]


def test_oom_retries_with_smaller_batches_then_smaller_tiles() -> None:
    runtime = MemoryBoundRuntime(budget_px=2 * 128 * 128)
    rgb = np.random.default_rng(0).random((300, 260, 3), dtype=np.float32)
    request = RestoreRequest(tiles=TileSettings(tile_px=256, overlap_px=16, batch=4))
    progress: list[tuple[int, int]] = []
    outcome = runtime(rgb, request, lambda done, total: progress.append((done, total)))
    # 4 x 256^2 fails, restore_tiled splits it to single 256 tiles, which fail too;
    # then 128 px tiles: batches of 4 fail, halves of 2 fit the budget
    assert outcome.tiles == TileSettings(tile_px=128, overlap_px=16, batch=4)
    assert outcome.oom_retries == 1
    assert (4, 3, 256, 256) in runtime.batches
    assert (1, 3, 256, 256) in runtime.batches
    assert (2, 3, 128, 128) in runtime.batches
    np.testing.assert_allclose(outcome.rgb, rgb, atol=1e-5)
    assert progress[-1][0] == progress[-1][1] == outcome.tile_count


def test_oom_at_the_smallest_tiling_is_an_error() -> None:
    runtime = MemoryBoundRuntime(budget_px=10)
    request = RestoreRequest(tiles=TileSettings(tile_px=128, overlap_px=8, batch=2))
    with pytest.raises(OutOfMemoryAtMinimumError, match="out of GPU memory"):
        runtime(np.zeros((100, 100, 3), np.float32), request)
    assert min(shape[2] for shape in runtime.batches) >= MIN_TILE_PX


def test_smaller_tiles_halves_the_edge_in_multiples() -> None:
    assert smaller_tiles(TileSettings(tile_px=200, overlap_px=8, batch=3), 8) == TileSettings(
        tile_px=96, overlap_px=8, batch=3
    )
    assert smaller_tiles(TileSettings(tile_px=64, overlap_px=8, batch=1), 8) is None
