"""The web page at `/`: one HTML file, its scripts, stylesheet and icon, all served from here.

The page (service/gateway/web/) is plain HTML, CSS and JavaScript modules with no build step and
no third-party resource: it talks to the same API as any client. Every file is answered with
strict headers: a Content-Security-Policy that allows only this origin's scripts and styles (no
inline script), images from here and from `blob:` URLs (the photo and the result, held in the
browser), no framing (`frame-ancestors 'none'`), `nosniff` and no referrer. `Settings.web_page`
turns the page off for API-only deployments; `create_app` then does not mount this router.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Header, Response

from service.errors import ErrorCode
from service.gateway.api_errors import ApiError

WEB_DIR = Path(__file__).resolve().parents[1] / "web"

# The files the page is made of and their media types; nothing else under web/ is served.
ASSETS = {
    "app.js": "text/javascript",
    "api.js": "text/javascript",
    "checks.js": "text/javascript",
    "compare.js": "text/javascript",
    "overlay.js": "text/javascript",
    "style.css": "text/css",
    "icon.svg": "image/svg+xml",
}

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    # revalidate every time (a 304 is cheap), so a new page and its scripts arrive together
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@functools.cache
def _read(name: str) -> tuple[bytes, str]:
    data = (WEB_DIR / name).read_bytes()
    return data, f'"{hashlib.sha256(data).hexdigest()[:32]}"'


def _serve(name: str, media_type: str, if_none_match: str | None) -> Response:
    data, etag = _read(name)
    headers = {**SECURITY_HEADERS, "ETag": etag}
    if if_none_match is not None and etag in [tag.strip() for tag in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


@router.get("/", response_class=Response)
def page(if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """The page."""
    return _serve("index.html", "text/html; charset=utf-8", if_none_match)


@router.get("/web/{name}", response_class=Response)
def asset(name: str, if_none_match: Annotated[str | None, Header()] = None) -> Response:
    """One of the page's files (`ASSETS`)."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"no file {name} in the web page")
    return _serve(name, media_type, if_none_match)
