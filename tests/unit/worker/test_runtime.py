"""Runtime: tiled restoration, tile batch sizing, compile and the OOM fallback to smaller tiles.

The OOM test uses a runtime whose batch function raises `torch.cuda.OutOfMemoryError`
when a batch is too large: the one place a fake is justified, since CPU tests cannot run
out of GPU memory. Everything around it (tiling, stitching, retries) is the real code.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from model.tiling import TileSettings
from service.config import Settings
from service.schemas import DeblurOptions
from tests.factories import save_tiny_checkpoint
from worker.runtime import (
    CPU_TILE_BATCH,
    MIN_TILE_PX,
    OutOfMemoryAtMinimumError,
    RestoreRequest,
    Runtime,
    smaller_tiles,
    to_array,
    to_tensor,
)
from worker.tile_memory import TileMemory


class MemoryBoundRuntime(Runtime):
    """Identity 'restorer' that runs out of memory above `budget_px` pixels per batch.

    A failing batch first allocates its 'activations'; `alive_at_release` records, each time
    the runtime empties the (CUDA) cache before a retry, whether any of them was still alive.
    """

    def __init__(self, budget_px: int) -> None:
        super().__init__(Settings())
        self.budget_px = budget_px
        self.batches: list[tuple[int, ...]] = []
        self.failed: list[weakref.ref[Tensor]] = []
        self.alive_at_release: list[bool] = []

    @property
    def size_multiple(self) -> int:
        return 8

    def restore_batch(self, tiles: Tensor, request: RestoreRequest) -> Tensor:
        self.batches.append(tuple(tiles.shape))
        if tiles.shape[0] * tiles.shape[2] * tiles.shape[3] > self.budget_px:
            activations = torch.empty(tiles.shape[0], 16, tiles.shape[2], tiles.shape[3])
            self.failed.append(weakref.ref(activations))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return tiles[:, :3]

    def _release_cached_memory(self) -> None:
        self.alive_at_release.append(any(ref() is not None for ref in self.failed))


def test_oom_retries_with_smaller_batches_then_smaller_tiles(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = MemoryBoundRuntime(budget_px=2 * 128 * 128)
    rgb = np.random.default_rng(0).random((300, 260, 3), dtype=np.float32)
    request = RestoreRequest(tiles=TileSettings(tile_px=256, overlap_px=16, batch=4))
    progress: list[tuple[int, int]] = []
    with caplog.at_level(logging.WARNING, logger="worker.runtime"):
        outcome = runtime(rgb, request, lambda done, total: progress.append((done, total)))
    # 4 x 256^2 fails, restore_tiled halves it to 2 then to single 256 tiles, which fail too
    # (3 retries); then 128 px tiles: the batch of 4 fails, halves of 2 fit the budget (1 more)
    assert runtime.batches[:4] == [
        (4, 3, 256, 256),
        (2, 3, 256, 256),
        (1, 3, 256, 256),
        (4, 3, 128, 128),
    ]
    assert set(runtime.batches[4:]) == {(2, 3, 128, 128), (1, 3, 128, 128)}  # 9 tiles
    # what ran, not what was asked: 128 px tiles in batches of 2; every halving counted
    assert outcome.tiles == TileSettings(tile_px=128, overlap_px=16, batch=2)
    assert outcome.oom_retries == 4
    assert len([r for r in caplog.records if "out of memory" in r.getMessage()]) == 4
    np.testing.assert_allclose(outcome.rgb, rgb, atol=1e-5)
    assert progress[-1][0] == progress[-1][1] == outcome.tile_count
    # the cache was emptied once, before the smaller tiles, with the failed attempt gone
    assert runtime.alive_at_release == [False]


def test_oom_at_the_smallest_tiling_is_an_error() -> None:
    runtime = MemoryBoundRuntime(budget_px=10)
    request = RestoreRequest(tiles=TileSettings(tile_px=128, overlap_px=8, batch=2))
    with pytest.raises(OutOfMemoryAtMinimumError, match="out of GPU memory") as raised:
        runtime(np.zeros((100, 100, 3), np.float32), request)
    assert min(shape[2] for shape in runtime.batches) >= MIN_TILE_PX
    # one 128 px tile, then a tile halving; 64 px: 4 tiles, batch 2 -> 1, then the last failure
    assert raised.value.oom_retries == 2
    assert runtime.alive_at_release == [False]


def test_smaller_tiles_halves_the_edge_in_multiples() -> None:
    assert smaller_tiles(TileSettings(tile_px=200, overlap_px=8, batch=3), 8) == TileSettings(
        tile_px=96, overlap_px=8, batch=3
    )
    assert smaller_tiles(TileSettings(tile_px=64, overlap_px=8, batch=1), 8) is None


def _tiny_checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    return save_tiny_checkpoint(path, with_prior=False)


MIB = 2**20


class MeasuredRuntime(Runtime):
    """A 'GPU' of `total` bytes whose peak per forward is `fixed + pixels * per_pixel`, except
    that batches above `real_limit` tiles run out of memory (what the line cannot foresee)."""

    def __init__(self, settings: Settings, total: int, real_limit: int) -> None:
        super().__init__(settings)
        self.total, self.real_limit = total, real_limit
        self.measured: list[int] = []

    @property
    def size_multiple(self) -> int:
        return 8

    def _device_memory_bytes(self) -> int:
        return self.total

    def _peak_bytes(self, batch: int, edge: int) -> int:
        self.measured.append(batch)
        if batch > self.real_limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return 100 * MIB + batch * edge * edge * 1000


def test_sizing_fits_the_line_and_lowers_the_budget_when_the_check_runs_out() -> None:
    settings = Settings(tile_px=256, vram_budget_fraction=0.5, max_tile_batch=64)
    # line: 100 MiB + 62.5 MiB a tile; budget 0.5 x 2 GiB = 1024 MiB -> 14 tiles predicted
    runtime = MeasuredRuntime(settings, total=2 * 2**30, real_limit=64)
    runtime._size_tile_batches()
    assert runtime.tile_memory == TileMemory(100 * MIB, 1000.0)
    assert runtime.measured == [1, 2, 14]
    assert runtime.tile_batch(256) == 14
    # the same line, but batches above 5 run out in the check: halve until one fits
    runtime = MeasuredRuntime(settings, total=2 * 2**30, real_limit=5)
    runtime._size_tile_batches()
    assert runtime.measured == [1, 2, 14, 7, 3]
    assert runtime.tile_batch(256) == 3


def test_sizing_that_cannot_measure_two_tiles_runs_batches_of_one() -> None:
    runtime = MeasuredRuntime(Settings(tile_px=256), total=2**30, real_limit=1)
    runtime.device = torch.device("cuda")  # only read by tile_batch's fallback, nothing runs
    runtime._size_tile_batches()
    assert runtime.tile_memory is None
    assert runtime.tile_batch(256) == 1


def test_a_fixed_tile_batch_setting_wins() -> None:
    runtime = Runtime(Settings(tile_batch=7))
    runtime.tile_memory = TileMemory(fixed_bytes=0, bytes_per_pixel=1.0)
    runtime.vram_budget_bytes = 1.0
    assert runtime.tile_batch(256) == 7


def test_the_automatic_batch_on_the_cpu_is_fixed(tmp_path: Path) -> None:
    runtime = Runtime(
        Settings(checkpoint=_tiny_checkpoint(tmp_path / "t.safetensors"), device="cpu")
    )
    runtime.setup()
    runtime.warmup()
    assert runtime.tile_memory is None
    assert runtime.tile_batch(256) == CPU_TILE_BATCH
    assert Runtime(Settings(max_tile_batch=2)).tile_batch(256) == 2


def test_the_automatic_batch_follows_the_measured_line_and_the_tile_edge() -> None:
    runtime = Runtime(Settings(max_tile_batch=64))
    runtime.tile_memory = TileMemory.from_peaks(256, 500 * 2**20, 800 * 2**20)
    runtime.vram_budget_bytes = 1400 * 2**20
    assert runtime.tile_batch(256) == 4
    assert runtime.tile_batch(128) == 16
    request = runtime.request_for(DeblurOptions(tile_px=128, tile_overlap_px=8, seed=3))
    assert request == RestoreRequest(
        tiles=TileSettings(tile_px=128, overlap_px=8, batch=16), prior_steps=None, seed=3
    )
    default = runtime.request_for(DeblurOptions())
    assert default.tiles == TileSettings(tile_px=256, overlap_px=32, batch=4)


# torch's own compile stack still calls its deprecated torch.jit.script_method (torch 2.13)
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.slow
@pytest.mark.timeout(600)  # a cold inductor cache compiles C++ kernels: ~1-2 min on 2 cores
def test_torch_compile_keeps_the_output(tmp_path: Path) -> None:
    checkpoint = _tiny_checkpoint(tmp_path / "t.safetensors")
    rgb = np.random.default_rng(0).random((40, 56, 3), dtype=np.float32)
    request = RestoreRequest(tiles=TileSettings(tile_px=32, overlap_px=8, batch=2), seed=0)
    outputs = []
    for compiled in (False, True):
        runtime = Runtime(Settings(checkpoint=checkpoint, device="cpu", torch_compile=compiled))
        runtime.setup()
        outputs.append(runtime(rgb, request).rgb)
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-5)


# torch's own compile stack still calls its deprecated torch.jit.script_method (torch 2.13)
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.slow
@pytest.mark.timeout(900)  # cold inductor cache: 8.5 min on the 2-core machine beside training
def test_a_compiled_network_compiles_once_for_every_partial_batch(tmp_path: Path) -> None:
    """Each image's last batch is partial (here 2, 1 and 3 of 3 tiles): padded up to the full
    batch, the compiled network sees one shape and never recompiles, at the same output.
    (Unpadded, Dynamo compiles again for the batch of 2 even after marking the batch dynamic:
    graphs for batches 1, 3, 2.)"""
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    checkpoint = save_tiny_checkpoint(tmp_path / "t.safetensors")  # with the prior
    settings = Settings(
        checkpoint=checkpoint, device="cpu", tile_px=32, tile_overlap_px=8, tile_batch=3
    )
    compiled = Runtime(settings.model_copy(update={"torch_compile": True}))
    compiled.setup()
    torch._dynamo.reset()
    counters.clear()
    compiled.warmup()  # a 32 px tile, then the jobs' shape: 3 tiles of 32 px
    graphs = counters["stats"]["unique_graphs"]
    assert graphs >= 1
    eager = Runtime(settings)
    eager.setup()
    rng = np.random.default_rng(0)
    options = DeblurOptions(seed=5)
    for height, width in ((32, 128), (40, 56), (32, 80)):  # 5, 4 and 3 tiles of 32 px
        rgb = rng.random((height, width, 3), dtype=np.float32)
        outcome = compiled(rgb, compiled.request_for(options))
        np.testing.assert_allclose(
            outcome.rgb, eager(rgb, eager.request_for(options)).rgb, atol=1e-4
        )
    assert counters["stats"]["unique_graphs"] == graphs, "recompiled for a batch size"


def test_padded_batches_leave_a_job_s_output_unchanged(tmp_path: Path) -> None:
    """The prior draws each tile's noise from its own seeded generator, so the padding tiles
    of a compiled worker's last batch change nothing."""
    torch.manual_seed(0)
    checkpoint = save_tiny_checkpoint(tmp_path / "t.safetensors")  # with the prior
    runtime = Runtime(Settings(checkpoint=checkpoint, device="cpu"))
    runtime.setup()
    rgb = np.random.default_rng(1).random((40, 128, 3), dtype=np.float32)  # 2 x 5 tiles
    tiles = TileSettings(tile_px=32, overlap_px=8, batch=4)
    plain = runtime(rgb, RestoreRequest(tiles, seed=3)).rgb
    padded = runtime(rgb, RestoreRequest(replace(tiles, pad_batches=True), seed=3)).rgb
    np.testing.assert_array_equal(padded, plain)
    assert Runtime(Settings(torch_compile=True)).request_for(DeblurOptions()).tiles.pad_batches


@pytest.mark.parametrize(("device", "needed"), [("cpu", r"C\+\+ compiler"), ("cuda", "C compiler")])
def test_compile_is_refused_at_start_up_without_a_compiler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, device: str, needed: str
) -> None:
    monkeypatch.setattr("worker.runtime.shutil.which", lambda name: None)
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("worker.runtime.resolve_device", lambda *_: torch.device(device))
    checkpoint = _tiny_checkpoint(tmp_path / "t.safetensors")
    runtime = Runtime(Settings(checkpoint=checkpoint, torch_compile=True))
    with pytest.raises(ValueError, match=f"TORCH_COMPILE=true needs a {needed}"):
        runtime.setup()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_warmup_sizes_tile_batches_from_measured_cuda_memory(tmp_path: Path) -> None:
    settings = Settings(
        checkpoint=_tiny_checkpoint(tmp_path / "t.safetensors"),
        device="cuda",
        tile_px=128,
        vram_budget_fraction=0.05,
        max_tile_batch=64,
    )
    runtime = Runtime(settings)
    runtime.setup()
    runtime.warmup()
    assert runtime.tile_memory is not None
    batch = runtime.tile_batch(128)
    assert 1 <= batch <= 64
    measured = runtime._peak_bytes(4, 128)
    predicted = runtime.tile_memory.peak_bytes(4, 128)
    assert abs(measured - predicted) < 0.25 * measured


def test_tensor_conversion_round_trip() -> None:
    rgb = np.random.default_rng(0).random((5, 7, 3), dtype=np.float32)
    tensor = to_tensor(rgb, torch.device("cpu"))
    assert tuple(tensor.shape) == (1, 3, 5, 7)
    assert np.array_equal(to_array(tensor), rgb)
