"""The API's error vocabulary: every code a client can get and its HTTP status.

Shared by the gateway (which answers with these codes, see `service.gateway.api_errors`) and
the upload validator the worker runs again on the stored bytes. Why a *job* failed has its own
vocabulary, `service.failures.FailureCode`.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Machine-readable error codes; the HTTP status of each is in `STATUS`."""

    INVALID_IMAGE = "invalid_image"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    JOB_NOT_FOUND = "job_not_found"
    NOT_FOUND = "not_found"
    NO_DEFOCUS_MAP = "no_defocus_map"
    RESULT_NOT_READY = "result_not_ready"
    JOB_NOT_SUCCEEDED = "job_not_succeeded"
    JOB_FINISHED = "job_finished"
    JOB_EXPIRED = "job_expired"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    TOO_MANY_PIXELS = "too_many_pixels"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNSUPPORTED_BIT_DEPTH = "unsupported_bit_depth"
    INVALID_OPTIONS = "invalid_options"
    MALFORMED_REQUEST = "malformed_request"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    HEADERS_TOO_LARGE = "headers_too_large"
    IDEMPOTENCY_KEY_MISMATCH = "idempotency_key_mismatch"
    IDEMPOTENCY_KEY_IN_USE = "idempotency_key_in_use"
    QUEUE_FULL = "queue_full"
    REDIS_UNAVAILABLE = "redis_unavailable"
    SERVER_BUSY = "server_busy"
    NOT_READY = "not_ready"
    INTERNAL_ERROR = "internal_error"


STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_IMAGE: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.JOB_NOT_FOUND: 404,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.NO_DEFOCUS_MAP: 404,
    ErrorCode.RESULT_NOT_READY: 409,
    ErrorCode.JOB_NOT_SUCCEEDED: 409,
    ErrorCode.JOB_FINISHED: 409,
    ErrorCode.JOB_EXPIRED: 410,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.TOO_MANY_PIXELS: 413,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ErrorCode.UNSUPPORTED_BIT_DEPTH: 415,
    ErrorCode.INVALID_OPTIONS: 422,
    ErrorCode.MALFORMED_REQUEST: 400,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.HEADERS_TOO_LARGE: 431,
    ErrorCode.IDEMPOTENCY_KEY_MISMATCH: 422,
    ErrorCode.IDEMPOTENCY_KEY_IN_USE: 409,
    ErrorCode.QUEUE_FULL: 429,
    ErrorCode.REDIS_UNAVAILABLE: 503,
    ErrorCode.SERVER_BUSY: 503,
    ErrorCode.NOT_READY: 503,
    ErrorCode.INTERNAL_ERROR: 500,
}

# What each code means, for the OpenAPI description of each status.
MEANING: dict[ErrorCode, str] = {
    ErrorCode.INVALID_IMAGE: "the upload is not a decodable image (corrupt or truncated)",
    ErrorCode.UNAUTHORIZED: "API keys are configured and the request carries none",
    ErrorCode.FORBIDDEN: "the API key is not one of the configured keys",
    ErrorCode.JOB_NOT_FOUND: "no job with this id was ever created here",
    ErrorCode.NOT_FOUND: "no such route",
    ErrorCode.NO_DEFOCUS_MAP: "the model that restored this job does not estimate the blur",
    ErrorCode.RESULT_NOT_READY: "the job is queued or running; poll GET /jobs/{id}",
    ErrorCode.JOB_NOT_SUCCEEDED: "the job failed or was canceled; GET /jobs/{id} says why",
    ErrorCode.JOB_FINISHED: "the job already finished and can no longer be canceled",
    ErrorCode.JOB_EXPIRED: "the job or its result outlived its retention time",
    ErrorCode.PAYLOAD_TOO_LARGE: "the request body is over max_upload_bytes",
    ErrorCode.TOO_MANY_PIXELS: "the image is over max_pixels (decompression bombs included)",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "not PNG, JPEG, WebP, TIFF or HEIC, or a TIFF kind not taken",
    ErrorCode.UNSUPPORTED_BIT_DEPTH: "samples other than unsigned 8 or 16 bit (float TIFF)",
    ErrorCode.INVALID_OPTIONS: "an option or header is out of range or malformed",
    ErrorCode.MALFORMED_REQUEST: "the request body cannot be parsed (e.g. broken multipart)",
    ErrorCode.METHOD_NOT_ALLOWED: "the route exists, not with this method; `Allow` lists them",
    ErrorCode.HEADERS_TOO_LARGE: "the request headers are over max_header_bytes",
    ErrorCode.IDEMPOTENCY_KEY_MISMATCH: "the Idempotency-Key was used with a different request",
    ErrorCode.IDEMPOTENCY_KEY_IN_USE: "a request with this Idempotency-Key is still in flight",
    ErrorCode.QUEUE_FULL: "the queue holds max_queue_depth jobs; retry after Retry-After",
    ErrorCode.REDIS_UNAVAILABLE: (
        "the job store is unreachable, read-only or full; retry after Retry-After"
    ),
    ErrorCode.SERVER_BUSY: "the gateway decodes as many pixels as it may; retry after Retry-After",
    ErrorCode.NOT_READY: "Redis unreachable or not taking writes, or no live worker has its model",
    ErrorCode.INTERNAL_ERROR: "a bug; the message says what failed",
}
