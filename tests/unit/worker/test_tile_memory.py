"""TileMemory: the line through two measured peaks, and the batch it allows under a budget."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.tile_memory import TileMemory

MIB = 2**20


def test_the_line_goes_through_both_measured_peaks() -> None:
    memory = TileMemory.from_peaks(256, one_tile_bytes=500 * MIB, two_tiles_bytes=800 * MIB)
    assert memory.fixed_bytes == 200 * MIB
    assert memory.peak_bytes(1, 256) == 500 * MIB
    assert memory.peak_bytes(2, 256) == 800 * MIB
    assert memory.peak_bytes(4, 256) == 1400 * MIB
    # a tile of half the edge has a quarter of the pixels, so a quarter of the per-tile cost
    assert memory.peak_bytes(4, 128) == 500 * MIB


def test_batch_for_is_the_largest_that_fits_the_budget() -> None:
    memory = TileMemory.from_peaks(256, one_tile_bytes=500 * MIB, two_tiles_bytes=800 * MIB)
    assert memory.batch_for(256, budget_bytes=1400 * MIB, cap=64) == 4
    assert memory.batch_for(256, budget_bytes=1400 * MIB - 1, cap=64) == 3
    assert memory.batch_for(128, budget_bytes=1400 * MIB, cap=64) == 16
    assert memory.batch_for(128, budget_bytes=1400 * MIB, cap=10) == 10


def test_batch_for_never_refuses_one_tile() -> None:
    memory = TileMemory.from_peaks(256, one_tile_bytes=500 * MIB, two_tiles_bytes=800 * MIB)
    assert memory.batch_for(256, budget_bytes=400 * MIB, cap=8) == 1
    assert memory.batch_for(1024, budget_bytes=100 * MIB, cap=8) == 1


def test_a_second_tile_measured_as_free_is_read_pessimistically() -> None:
    memory = TileMemory.from_peaks(256, one_tile_bytes=500 * MIB, two_tiles_bytes=500 * MIB)
    assert memory.fixed_bytes == 0
    assert memory.peak_bytes(2, 256) == 1000 * MIB
    assert memory.batch_for(256, budget_bytes=1600 * MIB, cap=64) == 3


@pytest.mark.parametrize(("tile_px", "one", "two"), [(0, 1, 2), (256, 0, 2), (256, 5, -1)])
def test_from_peaks_rejects_impossible_measurements(tile_px: int, one: int, two: int) -> None:
    with pytest.raises(ValueError, match="need tile_px >= 1 and positive peaks"):
        TileMemory.from_peaks(tile_px, one, two)


def test_bad_lines_and_arguments_are_errors() -> None:
    with pytest.raises(ValueError, match="bytes_per_pixel > 0"):
        TileMemory(fixed_bytes=10, bytes_per_pixel=0)
    memory = TileMemory(fixed_bytes=0, bytes_per_pixel=1.0)
    with pytest.raises(ValueError, match="cap >= 1"):
        memory.batch_for(256, budget_bytes=1e9, cap=0)


@given(
    fixed=st.integers(0, 4 * 2**30),
    per_tile=st.integers(1, 2**30),
    tile_px=st.integers(32, 2048),
    budget=st.floats(0, 80 * 2**30),
    cap=st.integers(1, 64),
)
def test_the_batch_fits_and_one_more_would_not(
    fixed: int, per_tile: int, tile_px: int, budget: float, cap: int
) -> None:
    memory = TileMemory.from_peaks(256, fixed + per_tile, fixed + 2 * per_tile)
    batch = memory.batch_for(tile_px, budget, cap)
    assert 1 <= batch <= cap
    if batch > 1:
        assert memory.peak_bytes(batch, tile_px) <= budget * (1 + 1e-9)
    if batch < cap:
        assert memory.peak_bytes(batch + 1, tile_px) > budget * (1 - 1e-9)
