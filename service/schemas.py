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


MEDIA_TYPES: dict[OutputFormat, str] = {
    OutputFormat.PNG: "image/png",
    OutputFormat.JPEG: "image/jpeg",
    OutputFormat.WEBP: "image/webp",
}


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
        default=OutputFormat.PNG, description="result encoding; PNG is lossless"
    )
    quality: int = Field(default=95, ge=1, le=100, description="JPEG/WebP quality")
    tile_px: int | None = Field(
        default=None, ge=32, description="tile edge in pixels; default: the server's setting"
    )
    tile_overlap_px: int | None = Field(
        default=None, ge=0, description="tile overlap in pixels (even); default: the server's"
    )
    prior_steps: int | None = Field(
        default=None, ge=0, description="diffusion-prior sampling steps; default: the model's"
    )
    seed: int | None = Field(
        default=None, ge=0, lt=2**63, description="seed of the prior's sampler (reproducible)"
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
