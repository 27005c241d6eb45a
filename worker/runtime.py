"""The warm model of one worker process: `setup()` once, `warmup()`, then `__call__` per job.

Like cog's predictor: the checkpoint is loaded and moved to the device once, one tile is run
so that lazy initialisation (CUDA context, kernels, allocator) is paid before the first job,
and each call restores one image with tiled inference. A model with a defocus front end also
returns its estimated radius map, stitched from the tiles like the image.

Tile batches: a fixed `tile_batch` setting, or (0, the default) sized automatically. On CUDA the
warm-up measures the peak memory of one and of two tiles, fits `worker.tile_memory.TileMemory`
to them and gives each job the largest batch whose predicted peak fits `vram_budget_fraction`
of the GPU for the tile edge the job uses; it then runs that batch once, which checks the
prediction (an OOM there lowers the budget) and, with `torch_compile`, compiles its shapes
before the first job. On the CPU the automatic batch is `CPU_TILE_BATCH`.

A CUDA out-of-memory error is not fatal: `restore_tiled` first halves the batch (down to single
tiles, keeping the smaller batch for the rest of the image); if one tile still does not fit, the
call starts over with half the tile edge, until it fits or the tiles are as small as
`MIN_TILE_PX`. Every retry runs after the failed attempt's frames and tensors are released (and
the CUDA cache emptied), every halving is logged and counted in `RestoreOutcome.oom_retries`,
and the outcome reports the tile edge and batch that actually ran.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from model.devices import autocast, full_float32, resolve_device, set_tf32
from model.restorer import Restorer, load_restorer
from model.self_ensemble import self_ensemble
from model.tiling import Progress, TileSettings, restore_tiled
from service.config import Settings
from service.schemas import (
    DeblurOptions,
    ModelLimits,
    refuse_impossible_prior_steps,
    refuse_impossible_refine_blur,
    refuse_impossible_tiling,
)
from worker.checkpoints import resolve_checkpoint
from worker.tile_memory import TileMemory

log = logging.getLogger(__name__)

# Below this edge a tile is mostly overlap; an image that does not fit at this size does not fit.
MIN_TILE_PX = 64
# The automatic batch on the CPU: batching barely changes CPU throughput (bench/model_speed.py
# measures 2.03x over the released path for one tile, 2.09x for four), it only adds memory.
CPU_TILE_BATCH = 4


class OutOfMemoryAtMinimumError(RuntimeError):
    """CUDA ran out of memory even with one tile of `MIN_TILE_PX` per batch."""

    def __init__(self, message: str, oom_retries: int) -> None:
        super().__init__(message)
        self.oom_retries = oom_retries  # halvings tried before giving up


@dataclass(frozen=True)
class RestoreRequest:
    """How to restore one image: tiling, prior steps, sampler seed, input depth."""

    tiles: TileSettings
    prior_steps: int | None = None
    seed: int | None = None
    # 16-bit input: run in float32 whatever the precision (bf16 output would be off by ~11 of
    # 65535 levels on average, 250 at worst; fp16 by a few)
    high_depth: bool = False
    # flipped/turned copies of each tile restored and averaged (`model.self_ensemble`)
    self_ensemble: int = 1
    # restore each tile twice, the second time with the blur estimate updated by re-blurring
    # the first result (`model.reblur`)
    refine_blur: bool = False


@dataclass(frozen=True)
class RestoreOutcome:
    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]
    tiles: TileSettings  # the tiling and batch that ran (smaller than asked after an OOM)
    tile_count: int
    oom_retries: int  # out-of-memory errors recovered from: batch halvings + tile halvings
    inference_s: float
    # (H, W) float32 estimated defocus radius in pixels; None when the model has no front end
    radius_px: np.ndarray | None = None


def smaller_tiles(tiles: TileSettings, multiple: int) -> TileSettings | None:
    """The next tiling after an OOM that single tiles hit: half the edge (in multiples).

    Batches need no halving here: `restore_tiled` already halves a batch that runs out of
    memory down to single tiles before the error reaches us.
    """
    half = (tiles.tile_px // 2) // multiple * multiple
    if half < max(MIN_TILE_PX, tiles.overlap_px * 2 + multiple):
        return None
    return replace(tiles, tile_px=half)


class Runtime:
    """One process's warm restorer (network + prior) on its device."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.device = torch.device("cpu")
        self.precision = "fp32"  # what runs (`setup()`: the setting on CUDA, fp32 on the CPU)
        self.restorer: Restorer | None = None
        self.checkpoint: Path | None = None
        self.load_s = 0.0
        self.tile_memory: TileMemory | None = None  # measured at warm-up (CUDA, automatic batch)
        self.vram_budget_bytes = 0.0

    @property
    def estimates_blur(self) -> bool:
        """Whether the model has a defocus front end, so each call also returns a radius map."""
        return self.restorer is not None and self.restorer.defocus is not None

    @property
    def size_multiple(self) -> int:
        """Tile edges are rounded down to this (the network's input multiple)."""
        assert self.restorer is not None, "setup() first"
        return int(self.restorer.network.size_multiple)

    def setup(self) -> None:
        """Load the checkpoint onto the device, once per process."""
        start = time.perf_counter()
        settings = self.settings
        self.checkpoint = resolve_checkpoint(settings)
        self.device = resolve_device(settings.device, settings.worker_index, settings.cuda_devices)
        if settings.torch_compile:
            refuse_compile_without_compiler(self.device)
        self._configure_device()
        self.restorer = load_restorer(self.checkpoint, device=self.device).eval()
        if settings.torch_compile:
            self.restorer.network.compile()
        self.load_s = time.perf_counter() - start
        log.info("loaded %s on %s in %.2fs", self.checkpoint, self.device, self.load_s)

    def _configure_device(self) -> None:
        """Precision and the process-wide torch switches for `self.device`.

        CUDA: the precision setting, and TF32 for float32 work (`tf32`). CPU: the CPU precision
        (`choose_cpu_precision`) and the thread count; TF32 and the other CUDA switches are left
        as they are.
        """
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # what torch puts on "the" GPU goes to this one
            self.precision = self.settings.precision
            set_tf32(self.settings.tf32)
            log.info(
                "precision %s on %s; TF32 for float32 matmuls and convolutions %s",
                self.precision,
                self.device,
                "on" if self.settings.tf32 else "off (SWINTORMER_TF32=false)",
            )
            return
        native_bf16 = cpu_has_native_bf16()
        self.precision = choose_cpu_precision(self.settings.cpu_precision, native_bf16)
        log.info(
            "precision %s on the CPU (SWINTORMER_CPU_PRECISION=%s, CPU capability %s,"
            " native bf16 %s)",
            self.precision,
            self.settings.cpu_precision,
            torch.backends.cpu.get_cpu_capability(),
            "yes" if native_bf16 else "no",
        )
        if self.settings.cpu_threads:
            torch.set_num_threads(self.settings.cpu_threads)

    def warmup(self) -> float:
        """Run one tile, so the first job does not pay for lazy initialisation.

        With the automatic tile batch on CUDA, also measure the tile memory and run one batch of
        the size the default tiles will use (see the module docstring).
        """
        start = time.perf_counter()
        edge = max(self.size_multiple, min(self.settings.tile_px, 2 * MIN_TILE_PX))
        edge = edge // self.size_multiple * self.size_multiple
        rgb = np.zeros((edge, edge, 3), np.float32)
        tiles = TileSettings(tile_px=edge, overlap_px=0, batch=1)
        self(rgb, RestoreRequest(tiles=tiles, prior_steps=None, seed=0))
        if self.device.type == "cuda" and self.settings.tile_batch == 0:
            self._size_tile_batches()  # runs the jobs' batch shape, which compiles it
        elif self.settings.torch_compile:  # compile the jobs' batch shape before the first job
            edge = self._edge(self.settings.tile_px)
            self._restore_blank(self.tile_batch(edge), edge)
        return time.perf_counter() - start

    def tile_batch(self, tile_px: int) -> int:
        """Tiles per forward pass for tiles of `tile_px`: the setting, or the automatic size."""
        if self.settings.tile_batch:
            return self.settings.tile_batch
        if self.tile_memory is None:  # the CPU, or a GPU where even the measurement ran out
            cpu = self.device.type == "cpu"
            return min(CPU_TILE_BATCH if cpu else 1, self.settings.max_tile_batch)
        return self.tile_memory.batch_for(
            tile_px, self.vram_budget_bytes, self.settings.max_tile_batch
        )

    def limits(self) -> ModelLimits:
        """What the loaded model can run, for the gateway to check submissions against."""
        assert self.restorer is not None, "setup() first"
        prior = self.restorer.prior
        return ModelLimits(
            size_multiple=self.size_multiple,
            prior_steps=prior.config.steps if prior else 0,
            estimates_blur=self.estimates_blur,
        )

    def refuse_impossible(self, request: RestoreRequest) -> None:
        """Raise ValueError for a request the loaded model cannot run (retrying cannot help)."""
        tiles = request.tiles
        refuse_impossible_tiling(tiles.tile_px, tiles.overlap_px, self.size_multiple)
        refuse_impossible_prior_steps(request.prior_steps, self.limits())
        refuse_impossible_refine_blur(request.refine_blur, self.limits())

    def request_for(self, options: DeblurOptions, high_depth: bool = False) -> RestoreRequest:
        """A job's restore request: its options over the worker's settings; `high_depth` for a
        16-bit input (restored in float32)."""
        settings = self.settings
        tile_px = options.tile_px or settings.tile_px
        overlap_px = (
            options.tile_overlap_px
            if options.tile_overlap_px is not None
            else settings.tile_overlap_px
        )
        tiles = TileSettings(
            tile_px=tile_px,
            overlap_px=overlap_px,
            batch=self.tile_batch(tile_px),
            pad_batches=settings.torch_compile,  # one batch shape: no recompile per image
        )
        return RestoreRequest(
            tiles=tiles,
            prior_steps=options.prior_steps,
            seed=options.seed,
            high_depth=high_depth,
            self_ensemble=settings.ensemble_copies(options.self_ensemble),
            # the server's default applies where the model estimates the blur; a job's own
            # request is checked by refuse_impossible
            refine_blur=settings.refines_blur(options.refine_blur)
            and (options.refine_blur is not None or self.estimates_blur),
        )

    def _size_tile_batches(self) -> None:
        """Fit the tile-memory line on this GPU and check it with one batch of default tiles."""
        edge = self._edge(self.settings.tile_px)
        try:
            one, two = (self._peak_bytes(batch, edge) for batch in (1, 2))
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            log.warning("two %dpx tiles do not fit: batches of one, smaller tiles on OOM", edge)
            return
        self.tile_memory = TileMemory.from_peaks(edge, one, two)
        self.vram_budget_bytes = self.settings.vram_budget_fraction * self._device_memory_bytes()
        while True:
            batch = self.tile_batch(edge)
            try:
                peak = self._peak_bytes(batch, edge)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                if batch == 1:
                    log.warning("one %dpx tile does not fit; jobs will retry smaller tiles", edge)
                    return
                self.vram_budget_bytes = self.tile_memory.peak_bytes(batch // 2, edge)
                continue
            log.info(
                "tile batch %d for %dpx tiles: peak %.2f GiB (predicted %.2f) of a %.2f GiB budget",
                batch,
                edge,
                peak / 2**30,
                self.tile_memory.peak_bytes(batch, edge) / 2**30,
                self.vram_budget_bytes / 2**30,
            )
            return

    def _device_memory_bytes(self) -> int:
        return int(torch.cuda.get_device_properties(self.device).total_memory)

    def _peak_bytes(self, batch: int, edge: int) -> int:
        """Peak CUDA memory allocated while restoring `batch` blank tiles of `edge` pixels."""
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self._restore_blank(batch, edge)
        torch.cuda.synchronize(self.device)
        return int(torch.cuda.max_memory_allocated(self.device))

    def _restore_blank(self, batch: int, edge: int) -> None:
        """Restore `batch` blank tiles of `edge` pixels: the shape a job's batches will have."""
        assert self.restorer is not None, "setup() first"
        with torch.inference_mode():
            tiles = torch.zeros(
                batch, self.restorer.image_channels, edge, edge, device=self.device
            )  # (N, C, t, t)
            # refined, where the model can be: the second pass's tensors come on top of the
            # first pass's result and the re-blur residuals
            request = RestoreRequest(
                tiles=TileSettings(edge, 0, batch),
                seed=0,
                refine_blur=self.estimates_blur,
            )
            self.restore_batch(tiles, request)

    def restore_batch(self, tiles: Tensor, request: RestoreRequest) -> Tensor:
        """Restore a batch of tiles (N, C, t, t) -> (N, 3, t, t) with the prior.

        With a defocus front end the estimated radius map is stacked after the image:
        (N, 4, t, t), so that tiling stitches it like the image.

        Each tile draws the prior's noise from its own generator seeded with the job's seed,
        so the result does not depend on the tile batch size or on OOM batch halving.
        """
        assert self.restorer is not None, "setup() first"
        with self._precision(request):
            restoration = self.restorer.run(
                tiles,
                steps=request.prior_steps,
                seed=request.seed,
                refine_blur=request.refine_blur,
            )
        return restoration.stacked()

    def _precision(self, request: RestoreRequest) -> contextlib.AbstractContextManager[object]:
        """The worker's precision; full float32 (no autocast, no TF32) for a 16-bit input."""
        if request.high_depth:
            return full_float32() if self.device.type == "cuda" else contextlib.nullcontext()
        return autocast(self.device, self.precision)

    def _edge(self, tile_px: int) -> int:
        """The tile edge that runs: `tile_px` rounded down to the network's input multiple."""
        multiple = self.size_multiple
        return max(multiple, tile_px // multiple * multiple)

    def __call__(
        self, rgb: np.ndarray, request: RestoreRequest, progress: Progress | None = None
    ) -> RestoreOutcome:
        """Restore one image.

        Args:
            rgb: (H, W, C) float32 in [0, 1]: C = 3, or 6 for a dual-pixel network (the
                two views side by side in channels).
            request: tiling, prior steps and seed.
            progress: called with (tiles done, tiles total) after each batch.

        Returns:
            The restored (H, W, 3) image, how it was tiled and, when the model has a defocus
            front end, the estimated (H, W) radius map.

        Raises:
            OutOfMemoryAtMinimumError: CUDA OOM even at the smallest tiling.
        """
        image = to_tensor(rgb, self.device)  # (1, C, H, W)
        out_channels = 4 if self.estimates_blur else 3  # restored image (+ radius map)
        oom_retries = 0
        tiles = replace(request.tiles, tile_px=self._edge(request.tiles.tile_px))
        while True:
            attempt = _Attempt(tiles, progress)
            start = time.perf_counter()
            restored = self._attempt(image, request, attempt, out_channels)
            oom_retries += attempt.batch_halvings
            if restored is not None:
                break
            # out of memory with single tiles; the failed attempt is gone by now
            smaller = smaller_tiles(tiles, self.size_multiple)
            if smaller is None:
                raise OutOfMemoryAtMinimumError(
                    f"out of GPU memory even with one {tiles.tile_px}px tile per batch "
                    f"after {oom_retries} retries",
                    oom_retries,
                )
            oom_retries += 1
            self._release_cached_memory()
            log.warning(
                "CUDA out of memory with one %dpx tile; retrying with %dpx tiles",
                tiles.tile_px,
                smaller.tile_px,
            )
            tiles = smaller
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return RestoreOutcome(
            rgb=to_array(restored[:, :3]),
            tiles=replace(tiles, batch=attempt.batch),
            tile_count=attempt.total,
            oom_retries=oom_retries,
            inference_s=time.perf_counter() - start,
            radius_px=radius_array(restored) if out_channels == 4 else None,
        )

    def _attempt(
        self, image: Tensor, request: RestoreRequest, attempt: _Attempt, out_channels: int
    ) -> Tensor | None:
        """One tiled pass at `attempt.tiles`: (1, out_channels, H, W), or None on OOM.

        The caller retries outside this frame, so the failed pass's tensors are freed first.
        """
        try:
            with torch.inference_mode():
                return restore_tiled(
                    self_ensemble(
                        functools.partial(self.restore_batch, request=request),
                        request.self_ensemble,
                    ),
                    image,
                    attempt.tiles,
                    progress=attempt.progress,
                    out_channels=out_channels,
                    on_batch_halved=attempt.batch_halved,
                )
        except torch.OutOfMemoryError:
            return None

    def _release_cached_memory(self) -> None:
        """Give the CUDA caching allocator's free blocks back before a smaller retry."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles), so bf16 kernels save
    work instead of converting to and from float32."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def choose_cpu_precision(setting: str, native_bf16: bool) -> str:
    """The precision a CPU worker runs: "fp32" or "bf16" as set; "auto" by measurement.

    "auto" is bf16 where the CPU computes bf16 natively (`native_bf16`) and float32 elsewhere.
    bench/cpu_precision.py measured bf16 autocast 1.46x faster than float32 for the default model
    (1.30x for lite-defocus) on an AVX512-BF16 CPU, within 0.005 dB of float32 against the sharp
    images, and 7-13x *slower* on an AVX2 CPU, which converts every bf16 operand (docs/model.md
    has both tables). The worker logs the choice with the CPU's capability.

    Raises:
        ValueError: an unknown setting.
    """
    if setting not in ("auto", "fp32", "bf16"):
        raise ValueError(f"cpu_precision must be auto, fp32 or bf16, not {setting!r}")
    if setting == "auto":
        return "bf16" if native_bf16 else "fp32"
    return setting


def refuse_compile_without_compiler(device: torch.device) -> None:
    """Raise ValueError when `torch.compile` would fail at the first job for want of a compiler.

    Inductor builds its CPU kernels with a C++ compiler (`CXX`, else g++) and Triton its GPU
    launchers with a C compiler (`CC`, else cc, gcc or clang), at run time.
    """
    if device.type == "cuda":
        names, kind = [os.environ.get("CC", ""), "cc", "gcc", "clang"], "C compiler (cc/gcc)"
    else:
        names, kind = [os.environ.get("CXX", ""), "g++"], "C++ compiler (g++)"
    if not any(name and shutil.which(name) for name in names):
        raise ValueError(
            f"SWINTORMER_TORCH_COMPILE=true needs a {kind} on PATH, which torch.compile runs"
            f" to build kernels for {device.type}; install one (Dockerfile.gpu's image has"
            " g++) or set SWINTORMER_TORCH_COMPILE=false"
        )


def to_tensor(image: np.ndarray, device: torch.device) -> Tensor:
    """(H, W, C) float32 array -> (1, C, H, W) tensor on `device`."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device)


def to_array(image: Tensor) -> np.ndarray:
    """(1, 3, H, W) tensor -> (H, W, 3) float32 array in [0, 1] on the CPU."""
    return image[0].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def radius_array(stacked: Tensor) -> np.ndarray:
    """(1, 4, H, W) restored image + radius map -> (H, W) float32 radius in px (>= 0)."""
    return stacked[0, 3].detach().float().clamp(min=0).cpu().numpy()


class _Attempt:
    """One tiled pass: forwards progress, counts and logs batch halvings, keeps the tile total
    and the batch size that ran last."""

    def __init__(self, tiles: TileSettings, progress: Progress | None) -> None:
        self.tiles = tiles
        self.batch = tiles.batch
        self.batch_halvings = 0
        self.total = 0
        self._progress = progress

    def progress(self, done: int, total: int) -> None:
        self.total = total
        if self._progress is not None:
            self._progress(done, total)

    def batch_halved(self, batch: int) -> None:
        self.batch_halvings += 1
        log.warning(
            "CUDA out of memory with %d %dpx tiles per batch; batches of %d from now on",
            self.batch,
            self.tiles.tile_px,
            batch,
        )
        self.batch = batch
