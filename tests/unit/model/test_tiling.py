"""Tiling: the plan covers every pixel; stitching is exact where it can be, bounded where not."""

from __future__ import annotations

import itertools
import weakref

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from model.config import SwintormerConfig
from model.swintormer import Swintormer
from model.tiling import RELEASED_TILING, Blend, TileSettings, plan_tiles, restore_tiled


@settings(max_examples=100, deadline=None)
@given(
    h=st.integers(1, 2000),
    w=st.integers(1, 2000),
    tile=st.integers(1, 300),
    overlap_fraction=st.floats(0, 0.95),
)
def test_plan_covers_every_pixel_with_equal_tiles(
    h: int, w: int, tile: int, overlap_fraction: float
) -> None:
    overlap = int(tile * overlap_fraction)
    tile = max(tile, min(h, w) // 50)  # keep the number of tiles small enough to check
    tiles = plan_tiles(h, w, tile, overlap)
    rows = sorted({(box.y0, box.y1) for box in tiles})
    cols = sorted({(box.x0, box.x1) for box in tiles})
    assert sorted((box.y0, box.y1, box.x0, box.x1) for box in tiles) == [
        (*row, *col) for row in rows for col in cols
    ]  # a grid: a pixel is covered when its row and its column are
    for spans, size in ((rows, h), (cols, w)):
        assert all(end - start == min(tile, size) for start, end in spans)
        assert spans[0][0] == 0  # first and last flush with the borders
        assert spans[-1][1] == size
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end - start >= overlap  # neighbours overlap enough: no gap


def test_plan_is_row_major_and_flush() -> None:
    tiles = plan_tiles(100, 150, 64, 16)
    assert [(t.y0, t.x0) for t in tiles] == [(y, x) for y in (0, 36) for x in (0, 48, 86)]


@pytest.mark.parametrize(("tile", "overlap"), [(0, 0), (8, 8), (8, -1)])
def test_invalid_plans_and_settings_are_rejected(tile: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="overlap"):
        plan_tiles(10, 10, tile, overlap)
    with pytest.raises(ValueError, match="must be"):
        TileSettings(tile_px=tile, overlap_px=overlap)


def test_released_scheme_is_256_tiles_stride_220_uniform() -> None:
    assert RELEASED_TILING.tile_px - RELEASED_TILING.overlap_px == 220
    assert RELEASED_TILING.blend is Blend.UNIFORM


@pytest.mark.parametrize("blend", list(Blend))
@pytest.mark.parametrize(("height", "width"), [(300, 517), (64, 64), (5, 200), (1, 1)])
def test_identity_comes_back_exactly(blend: Blend, height: int, width: int) -> None:
    image = torch.rand(1, 3, height, width)
    restored = restore_tiled(lambda x: x, image, TileSettings(64, 16, batch=3, blend=blend))
    assert torch.equal(restored, image)


def _conv_stack(layers: int) -> nn.Module:
    """3x3 convs, zero-padded: receptive radius = `layers` pixels."""
    convs = [
        nn.Conv2d(3 if i == 0 else 8, 8 if i < layers - 1 else 3, 3, padding=1)
        for i in range(layers)
    ]
    return nn.Sequential(*convs).eval()


def test_conv_stack_inside_the_overlap_equals_whole_image() -> None:
    image = torch.rand(1, 3, 150, 230)
    stack = _conv_stack(4)  # radius 4 = overlap // 4
    with torch.no_grad():
        tiled = restore_tiled(stack, image, TileSettings(48, 16, batch=5))
        torch.testing.assert_close(tiled, stack(image), atol=1e-5, rtol=0)
        # one pixel more and the seams show: the test is sensitive
        wider = _conv_stack(5)
        seams = restore_tiled(wider, image, TileSettings(48, 16, batch=5)) - wider(image)
        assert seams.abs().max() > 1e-4


def test_tiny_swintormer_tiled_differs_from_whole_image_within_the_documented_bound(
    tiny_config: SwintormerConfig,
) -> None:
    network = Swintormer(tiny_config).eval()
    image = torch.rand(1, 3, 96, 160)
    with torch.no_grad():
        difference = restore_tiled(network, image, TileSettings(64, 16)) - network(image)
    # documented in model/tiling.py: max below 0.1, mean below 0.002 for this setting
    assert difference.abs().max() < 0.1
    assert difference.abs().mean() < 0.002


def test_progress_reports_every_batch() -> None:
    calls: list[tuple[int, int]] = []
    restore_tiled(
        lambda x: x,
        torch.rand(1, 3, 100, 150),
        TileSettings(64, 16, batch=4),
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(4, 6), (6, 6)]


def test_out_of_memory_halves_the_batch() -> None:
    sizes: list[int] = []

    def small_memory(tiles: Tensor) -> Tensor:
        sizes.append(tiles.shape[0])
        if tiles.shape[0] > 1:
            raise torch.OutOfMemoryError("pretend the device is full")
        return tiles * 2

    image = torch.rand(1, 3, 100, 100)
    halved: list[int] = []
    restored = restore_tiled(
        small_memory, image, TileSettings(64, 16, batch=4), on_batch_halved=halved.append
    )
    assert torch.equal(restored, image * 2)
    # 4 tiles: the batch of 4 fails, then 2; single tiles fit, and the rest of the image keeps
    # them (a second batch of 2 would run out again)
    assert sizes == [4, 2, 1, 1, 1, 1]
    assert halved == [2, 1]

    def no_memory(tiles: Tensor) -> Tensor:
        raise torch.OutOfMemoryError("nothing fits")

    with pytest.raises(torch.OutOfMemoryError):
        restore_tiled(no_memory, image, TileSettings(64, 16))


def test_out_of_memory_retry_runs_once_the_failed_attempt_is_released() -> None:
    """The smaller batch must not run while the failed one's tensors are still alive (on CUDA
    they would hold the memory the retry needs): no retry from inside the `except` block."""
    failed: list[weakref.ref[Tensor]] = []
    alive_at_retry: list[bool] = []

    def small_memory(tiles: Tensor) -> Tensor:
        if failed:
            alive_at_retry.append(failed[-1]() is not None)
        if tiles.shape[0] > 2:
            activations = torch.empty(tiles.shape[0], 64, 64, 64)  # what the failed pass held
            failed.append(weakref.ref(activations))
            raise torch.OutOfMemoryError("pretend the device is full")
        return tiles

    restore_tiled(small_memory, torch.rand(1, 3, 100, 150), TileSettings(64, 16, batch=4))
    assert len(failed) == 1
    assert alive_at_retry
    assert not any(alive_at_retry)


def test_padded_batches_keep_one_shape_and_the_output() -> None:
    shapes: list[tuple[int, ...]] = []

    def scaled(tiles: Tensor) -> Tensor:
        shapes.append(tuple(tiles.shape))
        return tiles * torch.arange(1, tiles.shape[1] + 1)[:, None, None]

    image = torch.rand(1, 3, 100, 150)  # 6 tiles: batches of 4 and 2
    plain = restore_tiled(scaled, image, TileSettings(64, 16, batch=4))
    assert shapes == [(4, 3, 64, 64), (2, 3, 64, 64)]
    shapes.clear()
    padded = restore_tiled(scaled, image, TileSettings(64, 16, batch=4, pad_batches=True))
    assert shapes == [(4, 3, 64, 64), (4, 3, 64, 64)]
    assert torch.equal(padded, plain)


def test_one_image_at_a_time() -> None:
    with pytest.raises(ValueError, match=r"expected one image"):
        restore_tiled(lambda x: x, torch.rand(2, 3, 8, 8), TileSettings())
