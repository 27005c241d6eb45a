"""Deployment settings: one pydantic-settings object, read from the environment at the edge.

Every limit the service enforces is a field here with a sane default. Built once by the
entry point (`Settings()`), then passed down; no module holds a global instance.
Environment variables carry the `SWINTORMER_` prefix, e.g. `SWINTORMER_REDIS_URL`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.schemas import DeblurOptions, known_ensemble_size

MiB = 1024 * 1024


class Settings(BaseSettings):
    """Everything an operator may set, for the gateway and the workers alike."""

    model_config = SettingsConfigDict(env_prefix="SWINTORMER_", extra="forbid", frozen=True)

    redis_url: str | None = Field(
        default=None,
        description="Redis URL; unset: `swintormer serve` starts an embedded server",
    )
    queue_name: str = Field(default="deblur", description="RQ queue the workers listen on")

    host: str = Field(default="127.0.0.1", description="gateway bind address")
    port: int = Field(default=8000, ge=1, le=65535, description="gateway port")
    api_keys: list[SecretStr] = Field(
        default_factory=list, description="accepted API keys (JSON list); empty: no auth"
    )
    cors_origins: list[str] = Field(default_factory=list, description="CORS origins; empty: off")
    web_page: bool = Field(
        default=True, description="serve the web page at / (false: an API-only deployment)"
    )

    max_upload_bytes: int = Field(default=64 * MiB, gt=0, description="request body limit")
    max_header_bytes: int = Field(
        default=16 * 1024, gt=0, description="request header limit, all headers together (431)"
    )
    max_pixels: int = Field(default=50_000_000, gt=0, description="decoded pixel-count limit")
    max_queue_depth: int = Field(default=200, gt=0, description="queued jobs before 429")
    decode_pixel_budget: int = Field(
        default=50_000_000,
        gt=0,
        description="pixels the gateway decodes at once, all uploads together (bounds its memory"
        " whatever the concurrency; the default: one upload at max_pixels at a time)",
    )
    decode_wait_s: float = Field(
        default=10.0,
        ge=0,
        description="how long an upload waits for its share of decode_pixel_budget before 503",
    )

    job_timeout_s: int = Field(
        default=600, gt=0, description="RQ job_timeout of a job, plus job_s_per_megapixel"
    )
    job_s_per_megapixel: float = Field(
        default=30.0,
        ge=0,
        description="time added to job_timeout_s per megapixel of the image, so big images can"
        " finish (30 s/MP: ~0.03 MP/s, a slow CPU worker)",
    )
    queued_ttl_s: int = Field(default=3600, gt=0, description="how long a job may wait queued")
    result_ttl_s: int = Field(default=3600, gt=0, description="how long results are kept")
    failure_ttl_s: int = Field(default=86400, gt=0, description="how long failures are kept")
    job_retries: int = Field(default=2, ge=0, description="RQ Retry count (killed worker, OOM)")
    abandoned_grace_s: int = Field(
        default=30,
        gt=0,
        description="a worker silent this long is dead: /readyz stops counting it, and its"
        " running job is retried at the front of the queue once it stays silent a grace more"
        " under watch (two graces in all; more than worker_heartbeat_s)",
    )
    worker_heartbeat_s: float = Field(
        default=10.0, gt=0, description="how often a worker running a job sends a heartbeat"
    )
    redis_retry_max_s: float = Field(
        default=30.0,
        gt=0,
        description="longest pause between a worker's attempts to reach Redis during an outage",
    )
    job_record_ttl_s: int = Field(
        default=7 * 86400,
        gt=0,
        description="how long a job id is remembered, so an expired job answers 'expired'"
        " rather than 404",
    )
    idempotency_ttl_s: int = Field(
        default=86400, gt=0, description="how long an Idempotency-Key maps to its job"
    )
    retry_after_s: int = Field(
        default=5, gt=0, description="Retry-After sent with 429 (queue full) and 503 (Redis down)"
    )
    max_wait_s: int = Field(
        default=30, gt=0, le=300, description="longest long-poll a client may ask for"
    )
    redis_timeout_s: float = Field(
        default=2.0, gt=0, description="gateway socket timeout for Redis commands"
    )

    checkpoint: Path | None = Field(
        default=None, description="model checkpoint; unset: the shipped default weights"
    )
    device: str = Field(
        default="auto",
        description="'auto', 'cpu', 'cuda' or 'cuda:N'; 'auto' and 'cuda' put worker i on GPU"
        " i mod the GPU count (or on cuda_devices[i mod their count])",
    )
    cuda_devices: list[int] = Field(
        default_factory=list,
        description="GPUs (torch's indices) the workers spread over, JSON list; empty: every GPU"
        " the process sees",
    )
    worker_index: int = Field(
        default=0,
        ge=0,
        description="this worker's number, which picks its GPU (`serve` sets it: 0 to N-1)",
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        default="fp32",
        description="inference precision on GPU (16-bit inputs always run fp32: bf16 would cost"
        " ~11 of 65535 levels)",
    )
    cpu_precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto",
        description="inference precision on the CPU; auto: bf16 where the CPU has native bf16"
        " (AVX512-BF16 or AMX: measured 1.3-1.5x faster), else fp32 (bf16 measured 7-13x slower on"
        " an AVX2 CPU; docs/model.md); 16-bit inputs always run fp32",
    )
    tf32: bool = Field(
        default=True,
        description="on CUDA, run float32 matmuls and convolutions on TF32 tensor cores (~2x"
        " faster on Ampere and later; 16-bit inputs still run full fp32)",
    )
    cpu_threads: int = Field(
        default=0,
        ge=0,
        description="torch threads per worker on CPU; 0: PyTorch's default (all cores)",
    )
    tile_px: int = Field(default=256, gt=0, description="tile edge in pixels")
    tile_overlap_px: int = Field(default=32, ge=0, description="tile overlap in pixels")
    tile_batch: int = Field(
        default=0,
        ge=0,
        description=(
            "tiles per forward pass; 0: automatic (CUDA: the largest batch whose peak, measured"
            " at warm-up, fits vram_budget_fraction; CPU: 4)"
        ),
    )
    max_tile_batch: int = Field(default=32, gt=0, description="largest automatic tile batch")
    vram_budget_fraction: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description=(
            "share of the GPU's memory the automatic tile batch may fill at its peak;"
            " with several workers on one GPU give each its share"
        ),
    )
    torch_compile: bool = Field(
        default=False,
        description=(
            "torch.compile the network at start-up (warm-up then takes minutes; each new tile"
            " edge compiles once, partial batches are padded; needs a C/C++ compiler)"
        ),
    )
    png_compress_level: int = Field(
        default=1, ge=0, le=9, description="zlib level of PNG results (1: ~2x faster than 6)"
    )
    max_tile_px: int = Field(default=2048, gt=0, description="largest tile a client may ask for")
    max_prior_steps: int = Field(
        default=200, ge=0, description="most diffusion-prior steps a client may ask for"
    )
    self_ensemble: int = Field(
        default=1,
        description="flipped/turned copies of each tile averaged when a job does not say: 1"
        " (off), 2, 4 or 8 (2-8x the compute per job)",
    )
    max_self_ensemble: int = Field(
        default=8, ge=1, description="most self-ensemble copies a client may ask for"
    )
    refine_blur: bool = Field(
        default=False,
        description="when a job does not say: restore twice, the second pass with the blur"
        " estimate updated by re-blurring the first result (model.reblur; about 2x the"
        " compute); models without a blur estimator always restore once",
    )
    worker_maintenance_interval_s: int = Field(
        default=15, gt=0, description="how often an idle worker reaps abandoned jobs"
    )
    worker_metrics_port: int = Field(
        default=9100,
        ge=0,
        le=65535,
        description="worker /metrics port; 0 disables it (`serve`: worker i takes this + i, or"
        " a free port when that one is taken)",
    )
    worker_metrics_host: str = Field(
        default="127.0.0.1",
        description="worker /metrics bind address; containers scraped from outside: 0.0.0.0",
    )
    data_dir: Path = Field(
        default=Path(".swintormer"),
        description="`serve`'s embedded Redis keeps its append-only file (the queue) here;"
        " one directory per running `serve`",
    )
    worker_stop_grace_s: float = Field(
        default=60.0,
        gt=0,
        description="`serve`: how long a stopping worker may take to finish its job before it"
        " is killed (its job is then retried at the next start)",
    )
    worker_restart_max_s: float = Field(
        default=60.0,
        gt=0,
        description="`serve`: longest back-off before restarting a worker that keeps crashing",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("tile_overlap_px")
    @classmethod
    def _overlap_even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("tile_overlap_px must be even")
        return value

    @field_validator("self_ensemble")
    @classmethod
    def _known_ensemble(cls, value: int) -> int:
        return known_ensemble_size(value)

    @model_validator(mode="after")
    def _ensemble_within_limit(self) -> Settings:
        if self.self_ensemble > self.max_self_ensemble:
            raise ValueError("self_ensemble must not exceed max_self_ensemble")
        return self

    def ensemble_copies(self, requested: int | None) -> int:
        """The self-ensemble copies a job runs: its own `self_ensemble`, else this server's."""
        return requested or self.self_ensemble

    def refines_blur(self, requested: bool | None) -> bool:
        """Whether a job restores twice (`refine_blur`): its own choice, else this server's."""
        return self.refine_blur if requested is None else requested

    def model_runs(self, options: DeblurOptions) -> int:
        """How many times a job runs the whole model over each tile: its self-ensemble copies,
        twice with blur refinement (the job's time limit grows with it)."""
        passes = 2 if self.refines_blur(options.refine_blur) else 1
        return self.ensemble_copies(options.self_ensemble) * passes

    @model_validator(mode="after")
    def _heartbeat_within_grace(self) -> Settings:
        if self.worker_heartbeat_s >= self.abandoned_grace_s:
            raise ValueError("worker_heartbeat_s must be less than abandoned_grace_s")
        return self
