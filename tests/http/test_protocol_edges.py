"""HTTP edges from the #16 drills: every answer documented, JSON, and what HTTP promises."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from service.errors import ErrorCode
from service.gateway.routes.jobs import _matches, _result_headers
from tests import sample_images
from tests.http.clients import MakeClient


def submit(client: TestClient) -> str:
    response = client.post("/deblur", files={"file": ("a.png", sample_images.png_rgb())})
    assert response.status_code == 202
    return str(response.json()["id"])


def test_bomb_message_names_the_configured_limit(client: TestClient) -> None:
    response = client.post("/deblur", files={"file": ("b.png", sample_images.png_bomb())})
    assert response.status_code == 413
    message = response.json()["error"]["message"]
    assert "1000000" in message  # the fixture's max_pixels, not Pillow's twice that
    assert "2000000" not in message


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + b"garbage!" * 8,
        b"\xff\xd8\xff\xe0" + b"\x00" * 64,
        b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x01" * 64,
    ],
    ids=["png", "jpeg", "webp"],
)
def test_a_corrupt_header_of_a_supported_format_is_400(client: TestClient, data: bytes) -> None:
    response = client.post("/deblur", files={"file": ("c.png", data)})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_image"


def test_broken_multipart_is_a_documented_400(client: TestClient) -> None:
    response = client.post(
        "/deblur",
        content=b"--x\r\nno headers here",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert response.status_code in (400, 422)
    assert response.json()["error"]["code"] in {code.value for code in ErrorCode}


def test_repeated_form_fields_are_422(client: TestClient) -> None:
    response = client.post(
        "/deblur",
        files=[("file", ("a.png", sample_images.png_rgb()))],
        data={"quality": ["80", "90"]},
    )
    assert response.status_code == 422
    assert "quality" in response.json()["error"]["message"]


def test_405_lists_every_method_of_the_path(client: TestClient) -> None:
    response = client.put(f"/jobs/{'0' * 32}")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert set(response.headers["allow"].split(", ")) >= {"GET", "DELETE"}


def test_result_head_nosniff_and_if_none_match_star(client: TestClient) -> None:
    job_id = submit(client)
    assert client.head(f"/jobs/{job_id}/result").status_code == 409  # routed (was 405)
    assert _result_headers('"abc"', "x.png")["X-Content-Type-Options"] == "nosniff"
    assert _matches("*", '"abc"')
    assert _matches('W/"abc", "def"', '"abc"')
    assert not _matches('"def"', '"abc"')


def test_oversized_headers_are_431(make_client: MakeClient) -> None:
    client = make_client(max_header_bytes=1024)
    response = client.get("/healthz", headers={"X-Padding": "x" * 2000})
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "headers_too_large"
    assert client.get("/healthz").status_code == 200


def test_the_openapi_request_body_of_deblur_can_be_satisfied(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/deblur"]["post"]
    reference = operation["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    schema = client.get("/openapi.json").json()["components"]["schemas"][
        reference.rsplit("/", 1)[-1]
    ]
    assert "allOf" not in schema
    assert "$ref" not in schema
    assert schema["required"] == ["file"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {
        "file", "output_format", "quality", "tile_px", "tile_overlap_px", "prior_steps", "seed",
        "self_ensemble", "refine_blur",
    }  # fmt: skip
    for name, field in schema["properties"].items():
        assert "anyOf" not in field, name
        assert "$ref" not in field, name
    assert schema["properties"]["output_format"]["enum"] == ["png", "jpeg", "webp", "tiff"]
    assert schema["properties"]["self_ensemble"]["enum"] == [1, 2, 4, 8]
