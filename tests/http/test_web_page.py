"""The web page's files and headers, the setting that turns it off, and /client-settings."""

from __future__ import annotations

import re
from pathlib import Path

import redis
from starlette.testclient import TestClient

from service.gateway.routes.web_page import ASSETS, WEB_DIR
from service.schemas import ModelLimits
from service.storage import Storage
from tests.http.clients import MakeClient

MiB = 1024 * 1024


def test_page_and_assets_carry_strict_headers(client: TestClient) -> None:
    for path, media_type in [("/", "text/html"), *((f"/web/{n}", t) for n, t in ASSETS.items())]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(media_type), path
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "'unsafe-inline'" not in csp
        assert "frame-ancestors 'none'" in csp
        assert "default-src 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        again = client.get(path, headers={"If-None-Match": response.headers["etag"]})
        assert again.status_code == 304


def test_page_has_no_inline_script_and_no_third_party_resource() -> None:
    html = (WEB_DIR / "index.html").read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert 'src="/web/' in tag, tag
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html), "inline script"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert not re.search(r"\sstyle=", html), "inline style"
    for path in WEB_DIR.iterdir():
        text = re.sub(r'xmlns="[^"]*"', "", path.read_text())  # a namespace, not a request
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), path.name
    served = {"index.html", *ASSETS}
    assert {path.name for path in WEB_DIR.iterdir()} == served


def test_only_the_page_files_are_served(client: TestClient) -> None:
    for path in ["/web/index.html", "/web/..%2Fapp.py", "/web/nothing.js", "/web/"]:
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"


def test_setting_turns_the_page_off(make_client: MakeClient) -> None:
    client = make_client(web_page=False)
    assert client.get("/").status_code == 404
    assert client.get("/web/app.js").status_code == 404
    assert client.get("/client-settings").status_code == 200  # part of the API


def test_client_settings(make_client: MakeClient) -> None:
    open_gateway = make_client(max_upload_bytes=8 * MiB, max_pixels=4_000_000)
    body = open_gateway.get("/client-settings").json()
    assert body == {
        "max_upload_bytes": 8 * MiB,
        "max_pixels": 4_000_000,
        "input_media_types": [
            "image/png",
            "image/jpeg",
            "image/webp",
            "image/heic",
            "image/heif",
            "image/tiff",
        ],
        "output_formats": ["png", "jpeg", "webp", "tiff"],
        "api_key_required": False,
        "max_wait_s": 30,
        "result_ttl_s": 3600,
        "self_ensemble": 1,
        "self_ensemble_sizes": [1, 2, 4, 8],
        "refine_blur": False,
        "refine_blur_available": False,  # no worker has published its model yet
    }
    limited = make_client(self_ensemble=2, max_self_ensemble=4).get("/client-settings").json()
    assert (limited["self_ensemble"], limited["self_ensemble_sizes"]) == (2, [1, 2, 4])
    keyed = make_client(api_keys=["secret"])
    response = keyed.get("/client-settings")  # no key needed to learn that one is
    assert response.status_code == 200
    assert response.json()["api_key_required"] is True
    assert "secret" not in response.text


def test_client_settings_offer_blur_refinement_once_the_model_estimates_the_blur(
    make_client: MakeClient, redis_client: redis.Redis
) -> None:
    client = make_client(refine_blur=True)
    storage = Storage(redis_client)
    storage.put_model_limits("deblur", ModelLimits(size_multiple=8, prior_steps=0))
    body = client.get("/client-settings").json()
    assert (body["refine_blur"], body["refine_blur_available"]) == (True, False)
    limits = ModelLimits(size_multiple=8, prior_steps=0, estimates_blur=True)
    storage.put_model_limits("deblur", limits)
    body = client.get("/client-settings").json()
    assert (body["refine_blur"], body["refine_blur_available"]) == (True, True)


def test_page_files_are_package_data() -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"service.gateway" = ["web/*"]' in pyproject
