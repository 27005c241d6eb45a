"""`GET /client-settings`: the limits a client (the web page) checks before it uploads.

Public, like `/healthz`: it tells only what the gateway would refuse anyway, and whether an
API key is needed, never a key.
"""

from __future__ import annotations

import redis
from fastapi import APIRouter

from service.gateway.deps import SettingsDep, StorageDep
from service.schemas import MEDIA_TYPES, SELF_ENSEMBLE_SIZES, ClientSettings
from service.uploads import ALLOWED_FORMATS

router = APIRouter(tags=["client"])

# Pillow's format names -> the media types a browser sniffs (service/gateway/web/checks.js);
# TIFF is read by the codec's high-depth path, not by Pillow, so it is listed on its own
_MEDIA_TYPES_OF_FORMAT = {
    "PNG": ("image/png",),
    "JPEG": ("image/jpeg",),
    "WEBP": ("image/webp",),
    "HEIF": ("image/heic", "image/heif"),
}


@router.get(
    "/client-settings",
    response_model=ClientSettings,
    summary="Upload limits and options, for clients that check before uploading",
)
def client_settings(settings: SettingsDep, storage: StorageDep) -> ClientSettings:
    try:
        limits = storage.get_model_limits(settings.queue_name)
    except redis.RedisError:  # the page still loads; the option shows once Redis answers
        limits = None
    return ClientSettings(
        max_upload_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_pixels,
        input_media_types=[
            *(media for name in ALLOWED_FORMATS for media in _MEDIA_TYPES_OF_FORMAT[name]),
            "image/tiff",
        ],
        output_formats=list(MEDIA_TYPES),
        api_key_required=bool(settings.api_keys),
        max_wait_s=settings.max_wait_s,
        result_ttl_s=settings.result_ttl_s,
        self_ensemble=settings.self_ensemble,
        self_ensemble_sizes=[
            size for size in SELF_ENSEMBLE_SIZES if size <= settings.max_self_ensemble
        ],
        refine_blur=settings.refine_blur,
        refine_blur_available=limits is not None and limits.estimates_blur,
    )
