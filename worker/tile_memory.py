"""How many tiles fit in one forward pass: a linear model of peak device memory.

The peak memory of one tiled forward is, to a good approximation, a line in the number of input
pixels in the batch: the weights, the CUDA workspace and the prior's small buffers are fixed,
and every activation scales with batch x tile area (attention is window-local and channel
attention is per window, so no term grows faster than the pixel count). Two measured peaks, one
tile and two tiles of the same edge, fix the line; `TileMemory.batch_for` inverts it for a
memory budget and any tile edge a job asks for.

Pure arithmetic: the measurement on the GPU is the worker's (`worker.runtime`), so this module
is tested on the CPU and the budget logic does not need a device to be checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class TileMemory:
    """Predicted peak bytes of a forward of `batch` tiles of `tile_px`: fixed + per-pixel part."""

    fixed_bytes: float  # the line at zero pixels: weights, workspace, allocator granularity
    bytes_per_pixel: float  # added peak per input pixel of the batch (> 0)

    def __post_init__(self) -> None:
        if self.fixed_bytes < 0 or not self.bytes_per_pixel > 0:
            raise ValueError(
                "need fixed_bytes >= 0 and bytes_per_pixel > 0 "
                f"(got {self.fixed_bytes}, {self.bytes_per_pixel})"
            )

    @classmethod
    def from_peaks(cls, tile_px: int, one_tile_bytes: int, two_tiles_bytes: int) -> TileMemory:
        """The line through the measured peaks of one and of two `tile_px` tiles.

        A second tile that measures as free (the allocator reused a cached block, or the
        measurement is noisy) would predict unbounded batches; the per-tile cost is then taken
        as the whole one-tile peak, the pessimistic reading of the same two numbers.
        """
        if tile_px < 1 or one_tile_bytes <= 0 or two_tiles_bytes <= 0:
            raise ValueError(
                "need tile_px >= 1 and positive peaks "
                f"(got {tile_px}, {one_tile_bytes}, {two_tiles_bytes})"
            )
        per_tile = two_tiles_bytes - one_tile_bytes
        if per_tile <= 0:
            per_tile = one_tile_bytes
        return cls(
            fixed_bytes=max(one_tile_bytes - per_tile, 0),
            bytes_per_pixel=per_tile / tile_px**2,
        )

    def peak_bytes(self, batch: int, tile_px: int) -> float:
        """Predicted peak of one forward of `batch` tiles of `tile_px` x `tile_px`."""
        return self.fixed_bytes + batch * tile_px**2 * self.bytes_per_pixel

    def batch_for(self, tile_px: int, budget_bytes: float, cap: int) -> int:
        """The largest batch in [1, cap] whose predicted peak stays within `budget_bytes`.

        Never less than 1: when not even one tile is predicted to fit, the caller runs one and
        its out-of-memory handling (smaller tiles) takes over, instead of refusing up front on
        a prediction.
        """
        if tile_px < 1 or cap < 1:
            raise ValueError(f"need tile_px >= 1 and cap >= 1 (got {tile_px}, {cap})")
        room = budget_bytes - self.fixed_bytes
        fits = math.floor(room / (tile_px**2 * self.bytes_per_pixel)) if room > 0 else 0
        return max(1, min(cap, fits))
