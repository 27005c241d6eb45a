"""Pydantic shapes of the HTTP API: options in, job views out, the error body.

Input and output schemas are separate classes. `JobPayload` is what travels in the RQ job
(JSON): ids and options only, never image bytes. The worker imports these too.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class OutputFormat(StrEnum):
    """Encoding of the result image."""

    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"
    TIFF = "tiff"


MEDIA_TYPES: dict[OutputFormat, str] = {
    OutputFormat.PNG: "image/png",
    OutputFormat.JPEG: "image/jpeg",
    OutputFormat.WEBP: "image/webp",
    OutputFormat.TIFF: "image/tiff",
}
# Formats that keep 16 bits a sample (16-bit inputs come back at 16 bits in these)
DEEP_FORMATS = frozenset({OutputFormat.PNG, OutputFormat.TIFF})
# Copies of each tile a self-ensemble averages (`model.self_ensemble`; the gateway never imports
# torch, so the sizes are repeated here and a worker test checks both agree)
SELF_ENSEMBLE_SIZES = (1, 2, 4, 8)


def known_ensemble_size(size: int) -> int:
    """`size` if a self-ensemble can average that many copies; ValueError otherwise."""
    if size not in SELF_ENSEMBLE_SIZES:
        sizes = ", ".join(str(known) for known in SELF_ENSEMBLE_SIZES)
        raise ValueError(f"self_ensemble must be one of {sizes} (got {size})")
    return size


class JobStatus(StrEnum):
    """What a client sees; RQ's own status names never leave the gateway."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.EXPIRED})


class DeblurOptions(BaseModel):
    """Options of `POST /deblur`, sent as multipart form fields beside `file`."""

    model_config = ConfigDict(extra="forbid")

    output_format: OutputFormat = Field(
        default=OutputFormat.PNG,
        description="result encoding; PNG and TIFF are lossless and keep 16-bit inputs 16-bit",
    )
    quality: int = Field(default=95, ge=1, le=100, description="JPEG/WebP quality")
    tile_px: int | None = Field(
        default=None, ge=32, description="tile edge in pixels; default: the server's setting"
    )
    tile_overlap_px: int | None = Field(
        default=None, ge=0, description="tile overlap in pixels (even); default: the server's"
    )
    prior_steps: int | None = Field(
        default=None,
        ge=1,
        description="diffusion-prior sampling steps, 1 to the model's own (its default);"
        " refused for a model without a prior",
    )
    seed: int | None = Field(
        default=None, ge=0, lt=2**63, description="seed of the prior's sampler (reproducible)"
    )
    self_ensemble: int | None = Field(
        default=None,
        description="flipped and turned copies of each tile restored and averaged: 1 (off), 2,"
        " 4 or 8; slightly sharper at 2-8x the compute; default: the server's setting",
        json_schema_extra={"enum": list(SELF_ENSEMBLE_SIZES)},
    )
    refine_blur: bool | None = Field(
        default=None,
        description="restore twice, the second time with the blur that the first result"
        " re-blurs into the input best (sharper, about 2x the compute); only for models that"
        " estimate the blur; default: the server's setting",
    )

    @model_validator(mode="before")
    @classmethod
    def _only_known_fields(cls, data: Any) -> Any:
        # The multipart form carries `file` beside the options; anything else is a typo
        # (e.g. `tile_size`) that must not be silently ignored.
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields) - {"file"})
            if unknown:
                raise ValueError(f"unknown option(s): {', '.join(unknown)}")
            return {key: value for key, value in data.items() if key != "file"}
        return data

    @field_validator("self_ensemble")
    @classmethod
    def _known_ensemble(cls, value: int | None) -> int | None:
        return None if value is None else known_ensemble_size(value)

    @field_validator("tile_overlap_px")
    @classmethod
    def _overlap_even(cls, value: int | None) -> int | None:
        if value is not None and value % 2:
            raise ValueError("tile_overlap_px must be even")
        return value


class JobPayload(BaseModel):
    """The RQ job's only argument (JSON): the options plus what the gateway learnt at upload."""

    options: DeblurOptions
    filename: str = Field(description="sanitised upload name, used for Content-Disposition")
    width: int
    height: int
    mode: str = Field(description="Pillow mode of the upload after EXIF transpose")


class ModelLimits(BaseModel):
    """What the workers' loaded model can run, published by each worker at start-up.

    The gateway refuses options outside these at submission (422) rather than let a job
    fail on the worker.
    """

    size_multiple: int = Field(description="tile edges are rounded down to a multiple of this")
    prior_steps: int = Field(description="most prior sampling steps (T); 0: the model has no prior")
    # False where a worker from before this field published the limits
    estimates_blur: bool = Field(
        default=False, description="whether the model estimates the blur (a defocus front end)"
    )


def refuse_impossible_tiling(tile_px: int, overlap_px: int, size_multiple: int = 1) -> None:
    """Raise ValueError when tiles of `tile_px` (rounded down to `size_multiple`) cannot
    overlap by `overlap_px`."""
    edge = max(size_multiple, tile_px // size_multiple * size_multiple)
    if overlap_px >= edge:
        raise ValueError(
            f"tile_overlap_px ({overlap_px}) must be less than the tile edge ({edge}"
            + (
                f", tile_px rounded down to a multiple of {size_multiple}"
                if edge != tile_px
                else ""
            )
            + ")"
        )


def refuse_impossible_prior_steps(prior_steps: int | None, limits: ModelLimits) -> None:
    """Raise ValueError for prior steps the model cannot run."""
    if prior_steps is None:
        return
    if limits.prior_steps == 0:
        raise ValueError("prior_steps: the loaded model has no diffusion prior")
    if not 1 <= prior_steps <= limits.prior_steps:
        raise ValueError(f"prior_steps: the loaded model runs 1 to {limits.prior_steps}")


def refuse_impossible_refine_blur(refine_blur: bool | None, limits: ModelLimits) -> None:
    """Raise ValueError when a job asks for blur refinement from a model without an estimate."""
    if refine_blur and not limits.estimates_blur:
        raise ValueError("refine_blur: the loaded model does not estimate the blur")


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable code, see the API reference")
    message: str = Field(description="human-readable explanation")


class ErrorResponse(BaseModel):
    """Every error the API returns has this body."""

    error: ErrorDetail


class Progress(BaseModel):
    done: int = Field(description="tiles restored so far")
    total: int = Field(description="tiles in the image (0 until the worker planned them)")


class Timings(BaseModel):
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    queue_wait_s: float | None = Field(default=None, description="created -> started")
    run_s: float | None = Field(default=None, description="started -> ended")
    inference_s: float | None = Field(default=None, description="network + prior time")


class BlurEstimate(BaseModel):
    """The defocus the model estimated over the whole image (models with a defocus front end)."""

    median_radius_px: float = Field(description="median estimated defocus radius, pixels")
    p90_radius_px: float = Field(description="90th percentile of the radius, pixels")
    max_radius_px: float = Field(description="largest estimated radius, pixels")
    in_focus_fraction: float = Field(
        ge=0, le=1, description="share of pixels whose radius is below in_focus_below_px"
    )
    in_focus_below_px: float = Field(description="the radius under which a pixel is in focus")


class JobAccepted(BaseModel):
    """Body of 202 Accepted."""

    id: str
    status: JobStatus
    status_url: str
    result_url: str
    created_at: datetime
    expires_at: datetime = Field(description="the job is dropped if no worker starts it by then")
    queue_position: int | None = Field(description="jobs ahead of this one; null once started")


class JobView(BaseModel):
    """Body of `GET /jobs/{id}`."""

    id: str
    status: JobStatus
    progress: Progress
    queue_position: int | None = Field(description="jobs ahead of this one; null unless queued")
    timings: Timings | None = Field(description="null once the job has expired")
    error: ErrorDetail | None = Field(default=None, description="set when status is failed")
    result_url: str | None = Field(default=None, description="set when status is succeeded")
    blur: BlurEstimate | None = Field(
        default=None,
        description="the estimated defocus, once succeeded, when the model estimates it",
    )
    defocus_map_url: str | None = Field(
        default=None, description="the estimated radius map (16-bit PNG), set with `blur`"
    )


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    redis: bool
    workers_ready: int


class ClientSettings(BaseModel):
    """Body of `GET /client-settings`: what a client checks before uploading (the web page)."""

    max_upload_bytes: int = Field(description="request body limit (413 above it)")
    max_pixels: int = Field(description="width x height limit (413 above it)")
    input_media_types: list[str] = Field(description="upload types the gateway decodes")
    output_formats: list[OutputFormat] = Field(description="result encodings to choose from")
    api_key_required: bool = Field(description="whether /deblur and /jobs need X-API-Key")
    max_wait_s: int = Field(description="longest long-poll `GET /jobs/{id}?wait=`")
    result_ttl_s: int = Field(description="how long a result (and defocus map) is kept")
    self_ensemble: int = Field(description="copies per tile averaged when a job does not say")
    refine_blur: bool = Field(
        description="whether a job that does not say restores twice (`refine_blur`), where the"
        " model estimates the blur"
    )
    refine_blur_available: bool = Field(
        description="whether the workers' model estimates the blur, so that a job may choose"
        " `refine_blur` (false until a worker has started, or while Redis does not answer)"
    )
    self_ensemble_sizes: list[int] = Field(
        description="`self_ensemble` values a job may ask for on this server (1 = off)"
    )
