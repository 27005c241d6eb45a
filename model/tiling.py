"""Overlapping-tile inference: restore images of any size with memory bounded by the tile size.

`plan_tiles` cuts an image into tiles of one size that overlap by at least `overlap` pixels, the
last tile of each row and column flush with the border. `restore_tiled` runs a function on
batches of tiles and stitches the results by weighted accumulation:

- `Blend.FEATHER` (default): at an edge shared with another tile, a tile's weight is zero over
  the outer quarter of the overlap, ramps linearly over its middle half and is one beyond.
  Tiled output therefore EQUALS whole-image output (up to float rounding) for any function whose
  receptive radius is at most `overlap // 4` pixels, such as a stack of small convolutions.
- `Blend.UNIFORM`: the released code's scheme (256 px tiles, stride 220 = 36 px overlap, every
  covering tile weighted equally), kept to compare against.

What tiling does not preserve: the Swintormer sees each tile alone (attention windows, a 4-level
U-Net whose receptive field spans the whole tile), so its tiled output differs from its
whole-image output near tile seams. Measured for the `tiny` preset with random weights on a
96x160 noise image, 64 px tiles, 16 px overlap: max abs difference 0.050, mean 0.0006 with
FEATHER (mean 0.0014 with UNIFORM); test_tiling.py asserts max < 0.1 and mean < 0.002.

Memory: besides the input and the output, only the current batch of tiles and a float64
accumulator of one tile row (channels x tile x W) are held, so peak memory is flat in the image
size.
Accumulating in float64 makes the identity function come back bit-exact.

Out of memory: a batch that raises `torch.OutOfMemoryError` is retried at half its size, down
to single tiles, and the smaller size is kept for the rest of the image (the next batch would
run out too). The retry runs after the `except` block has ended, so the failed attempt's
traceback, and the tensors its frames hold, are released first (and, on CUDA, the allocator's
cache emptied) before the smaller batch allocates.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from model.swintormer import pad_to_size

Progress = Callable[[int, int], None]  # (tiles done, tiles total)
BatchHalved = Callable[[int], None]  # (the batch size from now on)


class Blend(enum.Enum):
    """How overlapping tile outputs are combined."""

    FEATHER = "feather"  # linear ramp across the middle half of each overlap
    UNIFORM = "uniform"  # equal weights, as the released inference script


@dataclass(frozen=True)
class Tile:
    """A tile's pixel box: rows y0:y1, columns x0:x1."""

    y0: int
    x0: int
    y1: int
    x1: int


@dataclass(frozen=True)
class TileSettings:
    """Tiled-inference settings (deployment limits, not architecture)."""

    tile_px: int = 256  # tile side; a multiple of the network's size_multiple avoids padding
    overlap_px: int = 32  # minimum overlap between neighbouring tiles
    batch: int = 4  # tiles per call of the network (halved on out-of-memory)
    blend: Blend = Blend.FEATHER
    # pad the last, partial batch up to `batch` tiles (copies of its last tile, dropped after):
    # a compiled network then sees one batch shape per image and never recompiles for it
    pad_batches: bool = False

    def __post_init__(self) -> None:
        if self.tile_px < 1 or self.batch < 1:
            raise ValueError(f"tile_px and batch must be >= 1 (got {self.tile_px}, {self.batch})")
        if not 0 <= self.overlap_px < self.tile_px:
            raise ValueError(
                f"overlap_px must be in [0, tile_px) (got {self.overlap_px}, {self.tile_px})"
            )


RELEASED_TILING = TileSettings(tile_px=256, overlap_px=36, blend=Blend.UNIFORM)


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: every tile - overlap pixels, the last one flush."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return [*starts, size - tile]


def plan_tiles(h: int, w: int, tile: int, overlap: int) -> list[Tile]:
    """Cover an h x w image with tiles, row-major.

    Tiles are `tile` x `tile` (or the whole side where the image is smaller), neighbours overlap
    by at least `overlap`, and the last tile of each row/column is flush with the border.
    Pure arithmetic: no tensors.
    """
    if h < 1 or w < 1:
        raise ValueError(f"image must be at least 1 x 1 (got {h} x {w})")
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile (got {tile}, {overlap})")
    rows, cols = _starts(h, tile, overlap), _starts(w, tile, overlap)
    return [Tile(y, x, min(y + tile, h), min(x + tile, w)) for y in rows for x in cols]


def _edge_ramp(length: int, overlap: int, blend: Blend) -> Tensor:
    """Weight by distance from an edge shared with another tile: (length,) float64."""
    if blend is Blend.UNIFORM or overlap == 0:
        return torch.ones(length, dtype=torch.float64)
    margin = overlap // 4
    span = overlap - 2 * margin
    distance = torch.arange(length, dtype=torch.float64)
    return ((distance - margin + 1) / (span + 1)).clamp(0, 1)


def _axis_weights(starts: Sequence[int], tile: int, size: int, settings: TileSettings) -> Tensor:
    """Per-tile weights along one axis, normalised to sum to one: (len(starts), tile)."""
    weights = torch.ones(len(starts), tile, dtype=torch.float64)
    for i, start in enumerate(starts):
        if start > 0:  # shares its leading edge with the previous tile
            weights[i] *= _edge_ramp(tile, settings.overlap_px, settings.blend)
        if start + tile < size:  # shares its trailing edge with the next tile
            weights[i] *= _edge_ramp(tile, settings.overlap_px, settings.blend).flip(0)
    total = torch.zeros(size, dtype=torch.float64)
    for i, start in enumerate(starts):
        total[start : start + tile] += weights[i]
    for i, start in enumerate(starts):
        weights[i] /= total[start : start + tile]
    return weights


def restore_tiled(
    fn: Callable[[Tensor], Tensor],
    image: Tensor,
    settings: TileSettings,
    progress: Progress | None = None,
    out_channels: int = 3,
    on_batch_halved: BatchHalved | None = None,
) -> Tensor:
    """Apply `fn` tile by tile and blend the tiles back into one image.

    Args:
        fn: maps a batch of tiles (N, C, t, t) to (N, out_channels, t, t), e.g. a network in
            eval mode (or restored image and defocus map stacked, 3 + 1 channels).
        image: (1, C, H, W), any H and W (reflect-padded up to one tile when smaller).
        settings: tile size, overlap, batch size and blending.
        progress: called as progress(tiles done, tiles total) after each batch.
        out_channels: channels of `fn`'s output.
        on_batch_halved: called with the new batch size each time an out-of-memory error
            halves it (the rest of the image then runs at that size).

    Returns:
        (1, out_channels, H, W), the dtype of `image`.

    Raises:
        torch.OutOfMemoryError: even a batch of one tile runs out of memory.
    """
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"expected one image (1, C, H, W), got {tuple(image.shape)}")
    H, W = image.shape[-2:]
    tile = settings.tile_px
    padded = pad_to_size(image, max(H, tile), max(W, tile))
    Hp, Wp = padded.shape[-2:]
    tiles = plan_tiles(Hp, Wp, tile, settings.overlap_px)  # row-major
    rows = sorted({t.y0 for t in tiles})
    cols = sorted({t.x0 for t in tiles})
    row_weights = dict(
        zip(rows, _axis_weights(rows, tile, Hp, settings).to(image.device), strict=True)
    )
    col_weights = dict(
        zip(cols, _axis_weights(cols, tile, Wp, settings).to(image.device), strict=True)
    )

    output = torch.empty(1, out_channels, H, W, dtype=image.dtype, device=image.device)
    band = torch.zeros(out_channels, tile, Wp, dtype=torch.float64, device=image.device)
    band_y0 = 0  # image row of band[:, 0]
    batch_size = settings.batch
    first = 0
    while first < len(tiles):
        batch = tiles[first : first + batch_size]
        restored = _try_batch(fn, padded, batch, batch_size if settings.pad_batches else 0)
        if restored is None:  # out of memory, and the failed attempt is released by now
            if image.is_cuda:
                torch.cuda.empty_cache()
            batch_size //= 2
            if on_batch_halved is not None:
                on_batch_halved(batch_size)
            continue
        for box, result in zip(batch, restored, strict=False):  # padded tiles drop out here
            if box.y0 > band_y0:  # a new tile row: the rows above it are final
                band_y0 = _flush(band, band_y0, box.y0, output)
            weight = row_weights[box.y0][:, None] * col_weights[box.x0]  # (t, t)
            y = box.y0 - band_y0
            band[:, y : y + tile, box.x0 : box.x1] += result.double() * weight
        del restored  # before the next batch allocates
        first += len(batch)
        if progress is not None:
            progress(first, len(tiles))
    _flush(band, band_y0, Hp, output)
    return output


def _try_batch(
    fn: Callable[[Tensor], Tensor], padded: Tensor, batch: Sequence[Tile], pad_to: int
) -> Tensor | None:
    """fn on the crops of `batch` (padded up to `pad_to` tiles): (N, out, t, t), or None on OOM.

    Returning None rather than retrying here lets the caller retry outside this frame and
    outside the `except` block, once the failed attempt's tensors are gone. A single tile
    that runs out of memory cannot be split: its error propagates.
    """
    crops = torch.cat([padded[..., t.y0 : t.y1, t.x0 : t.x1] for t in batch])  # (N, C, t, t)
    if pad_to > len(batch):
        crops = torch.cat([crops, crops[-1:].expand(pad_to - len(batch), *crops.shape[1:])])
    try:
        return fn(crops)
    except torch.OutOfMemoryError:
        if crops.shape[0] == 1:
            raise
        return None


def _flush(band: Tensor, band_y0: int, until: int, output: Tensor) -> int:
    """Write band rows [band_y0, until) (image rows) to `output`, shift the band; new band_y0."""
    H, W = output.shape[-2:]
    done = until - band_y0
    keep = min(done, max(H - band_y0, 0))
    output[0, :, band_y0 : band_y0 + keep] = band[:, :keep, :W].to(output.dtype)
    band[:, : band.shape[1] - done] = band[:, done:].clone()
    band[:, band.shape[1] - done :] = 0
    return until
