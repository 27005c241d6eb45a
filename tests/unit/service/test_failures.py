"""Job-failure codes: the upload ones equal the API's, and the service guide lists them all."""

from __future__ import annotations

from pathlib import Path

from service.errors import ErrorCode
from service.failures import FailureCode

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "service.md"


def test_upload_failures_carry_the_api_codes() -> None:
    for code in (ErrorCode.INVALID_IMAGE, ErrorCode.UNSUPPORTED_BIT_DEPTH):
        assert FailureCode.of_upload(code).value == code.value


def test_the_service_guide_lists_every_failure_code() -> None:
    guide = GUIDE.read_text()
    assert [code.value for code in FailureCode if f"`{code.value}`" not in guide] == []
