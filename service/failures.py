"""Why a job failed: the codes a worker writes into the job and `GET /jobs/{id}` shows.

One enum for both sides of the queue: the worker sets `{"error": {"code", "message"}}` in the
job's meta with one of these codes, and the gateway reads them back (or infers `timeout`,
`worker_lost` and `internal_error` from RQ's record when a worker died before writing one).
The upload codes are the API's own (`service.errors.ErrorCode`), because the worker re-runs
the gateway's upload validation on the stored bytes.
"""

from __future__ import annotations

from enum import StrEnum

from service.errors import ErrorCode


class FailureCode(StrEnum):
    """`error.code` of a failed job."""

    INVALID_IMAGE = ErrorCode.INVALID_IMAGE.value
    TOO_MANY_PIXELS = ErrorCode.TOO_MANY_PIXELS.value
    UNSUPPORTED_MEDIA_TYPE = ErrorCode.UNSUPPORTED_MEDIA_TYPE.value
    UNSUPPORTED_BIT_DEPTH = ErrorCode.UNSUPPORTED_BIT_DEPTH.value
    INVALID_OPTIONS = ErrorCode.INVALID_OPTIONS.value
    INPUT_EXPIRED = "input_expired"
    OUT_OF_MEMORY = "out_of_memory"
    TIMEOUT = "timeout"
    CANCELED = "canceled"
    WORKER_LOST = "worker_lost"
    INTERNAL_ERROR = ErrorCode.INTERNAL_ERROR.value

    @classmethod
    def of_upload(cls, code: ErrorCode) -> FailureCode:
        """The failure code of an upload the worker's validation refused."""
        return cls(code.value)
