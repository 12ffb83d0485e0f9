"""Use case of a generate request that uploads its media: the files become assets, then it is a generation.

The uploaded files are stored as assets of the caller's organization and the request becomes an ordinary
``CreateGenerationDto`` whose inputs name them (``{"type": "video", "assetId": ...}``), accepted by the
same ``create_generation`` as a JSON body. Nothing is stored for a request that fails validation, and the
assets of a refused request, or of a retry answered with an earlier generation, are removed again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from lipsync_api.domain.generation_service import (
    ServiceLimits,
    check_idempotency_key,
    create_generation,
    validate_payload,
)
from lipsync_api.errors import InvalidGenerationRequest
from lipsync_api.storage import Storage
from lipsync_api.store import Store
from lipsync_api.store.models import Asset, AssetKind, Generation, Organization

log = logging.getLogger(__name__)

# Stands in for the assetIds while the request is validated, before anything is stored.
PENDING_ASSET_ID = "pending-upload"


@dataclass(frozen=True)
class MediaUpload:
    """One uploaded file, already on local disk: what it is for, where, its size and SHA-256."""

    kind: AssetKind
    path: Path
    size: int
    sha256: str
    filename: str | None = None


def with_uploads(body: Mapping[str, Any], refs: Mapping[AssetKind, Mapping[str, Any]]) -> dict[str, Any]:
    """``body`` with an input per uploaded file after its own: ``{"type": kind, **ref}``, video first."""
    merged = dict(body)
    own = body.get("input")
    uploaded = [{"type": kind.value, **refs[kind]} for kind in AssetKind if kind in refs]
    merged["input"] = [*(own if isinstance(own, list) else []), *uploaded]
    return merged


async def create_generation_from_uploads(
    store: Store,
    storage: Storage,
    org: Organization,
    body: Mapping[str, Any],
    uploads: Sequence[MediaUpload],
    idempotency_key: str | None,
    limits: ServiceLimits,
    *,
    now: datetime | None = None,
) -> Generation:
    """Store the uploads as assets and accept the generation naming them (or answer an earlier one).

    An Idempotency-Key recognises a retry by the files' digests, not by the (new) assetIds.
    """
    check_idempotency_key(idempotency_key)
    pending = with_uploads(body, {u.kind: {"assetId": PENDING_ASSET_ID} for u in uploads})
    _, problems = validate_payload(pending, limits.catalog)
    if problems:  # as create_generation would answer, before anything is stored
        codes = {problem.code for problem in problems}
        code = codes.pop() if len(codes) == 1 else None
        raise InvalidGenerationRequest([problem.describe() for problem in problems], error_code=code)
    fingerprint = with_uploads(
        body, {u.kind: {"upload": {"sha256": u.sha256, "size": u.size}} for u in uploads}
    )
    assets = await store_assets(store, storage, org.id, uploads, now=now)
    request = with_uploads(body, {AssetKind(a.kind): {"assetId": a.id} for a in assets})
    try:
        generation = await create_generation(
            store, org, request, idempotency_key, limits, now=now, fingerprint=fingerprint
        )
    except Exception:
        await discard_assets(store, storage, assets)
        raise
    named = _asset_ids(generation)
    await discard_assets(store, storage, [a for a in assets if a.id not in named])  # a retry's copies
    return generation


async def store_assets(
    store: Store,
    storage: Storage,
    organization_id: str,
    uploads: Sequence[MediaUpload],
    *,
    now: datetime | None = None,
) -> list[Asset]:
    """One asset per upload: its row first, then its file copied into storage (all or none of them)."""
    assets: list[Asset] = []
    try:
        for upload in uploads:
            asset = await store.assets.create(
                organization_id, upload.kind, upload.size, upload.filename, now=now
            )
            assets.append(asset)
            await storage.put_file(asset.storage_key, upload.path)
    except Exception:
        await discard_assets(store, storage, assets)
        raise
    return assets


async def discard_assets(store: Store, storage: Storage, assets: Sequence[Asset]) -> None:
    """Remove assets: each file, then its row (so a file never outlives the row that names it)."""
    for asset in assets:
        try:
            await storage.delete(asset.storage_key)
            await store.assets.delete(asset.id)
        except Exception:  # cleanup must not hide the error that caused it; retention gets the rest
            log.warning("could not remove asset %s", asset.id, exc_info=True)


def _asset_ids(generation: Generation) -> set[str]:
    items = (generation.request or {}).get("input")
    return {str(item["assetId"]) for item in items or () if isinstance(item, dict) and "assetId" in item}
