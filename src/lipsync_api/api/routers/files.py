"""``/v2/files/{key}``: stored outputs and results files behind signed, expiring URLs (no API key)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from starlette.responses import Response

from lipsync_api.api.deps import State
from lipsync_api.api.responses import ERROR_RESPONSES
from lipsync_api.errors import NotFoundError, SignedUrlRejected
from lipsync_api.storage.signing import FILES_ROUTE, SignatureCheck, verify

router = APIRouter(tags=["files"], responses=ERROR_RESPONSES)

MEDIA_TYPES = {".jsonl": "application/x-ndjson", ".mp4": "video/mp4"}
FILE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The file; 403 for a bad or expired signature, 404 once it is gone.",
        "content": {
            media_type: {"schema": {"type": "string", "format": "binary"}}
            for media_type in [*MEDIA_TYPES.values(), "application/octet-stream"]
        },
    }
}


def _media_type(key: str) -> str:
    suffix = key[key.rfind(".") :] if "." in key else ""
    return MEDIA_TYPES.get(suffix, "application/octet-stream")


@router.get(
    FILES_ROUTE + "{key:path}",
    summary="Download a stored file by its signed URL",
    response_model=None,
    response_class=Response,
    responses=FILE_DOC,
)
async def download(
    state: State,
    request: Request,
    key: str,
    expires: Annotated[str, Query()] = "",
    signature: Annotated[str, Query()] = "",
) -> Response:
    """Stream the file when the signature holds and has not expired; 403 otherwise."""
    # One spelling per URL: with a parameter given twice, a cache or log reading the first value would
    # see another URL than the one checked here (the last).
    if any(len(request.query_params.getlist(name)) > 1 for name in ("expires", "signature")):
        raise SignedUrlRejected("invalid URL signature: expires and signature must be given once")
    check = verify(state.signer.secret, key, expires, signature, time.time())

    if check is SignatureCheck.EXPIRED:
        raise SignedUrlRejected("this URL has expired", error_code="url_expired")
    if check is not SignatureCheck.OK:
        raise SignedUrlRejected("invalid URL signature")
    if not await state.storage.exists(key):
        raise NotFoundError("file not found")
    path = state.storage.local_path(key)
    if path is not None:
        return FileResponse(path, media_type=_media_type(key))
    return StreamingResponse(state.storage.iter_bytes(key), media_type=_media_type(key))
