"""`GET /client-settings`: the limits a client (the web page) checks before it uploads.

Public, like `/healthz`: it tells only what the gateway would refuse anyway, and whether an
API key is needed, never a key.
"""

from __future__ import annotations

from fastapi import APIRouter

from service.gateway.deps import SettingsDep
from service.schemas import MEDIA_TYPES, ClientSettings
from service.uploads import ALLOWED_FORMATS

router = APIRouter(tags=["client"])

_MEDIA_TYPE_OF_FORMAT = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}


@router.get(
    "/client-settings",
    response_model=ClientSettings,
    summary="Upload limits and options, for clients that check before uploading",
)
def client_settings(settings: SettingsDep) -> ClientSettings:
    return ClientSettings(
        max_upload_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_pixels,
        input_media_types=[_MEDIA_TYPE_OF_FORMAT[name] for name in ALLOWED_FORMATS],
        output_formats=list(MEDIA_TYPES),
        api_key_required=bool(settings.api_keys),
        max_wait_s=settings.max_wait_s,
        result_ttl_s=settings.result_ttl_s,
    )
