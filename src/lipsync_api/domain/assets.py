"""Inputs naming an uploaded asset (``assetId``): checked against the caller's assets, found on disk later.

An ``assetId`` is accepted when the asset exists, belongs to the caller's organization and holds what the
input's type says (a video asset for a video input). The engine reads the asset's file straight from
local storage through ``local_asset_paths``; no other local path is ever opened for an HTTP request.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lipsync_api.api.engine_request import AssetPath
from lipsync_api.api.generation_request import FieldProblem
from lipsync_api.api.schemas import AudioInput, CreateGeneration, VideoInput
from lipsync_api.domain.batchfile import BatchLine, LineProblem
from lipsync_api.errors import ErrorCode, GenerationError
from lipsync_api.storage.local import LocalStorage
from lipsync_api.store import Store
from lipsync_api.store.assets import asset_key
from lipsync_api.store.models import Asset

if TYPE_CHECKING:
    from lipsync_api.domain.generation_service import ValidPayload

# Asset ids are ``str(uuid4())``; anything else in a stored request cannot name one of our files.
ASSET_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class AssetRef:
    """One input's ``assetId``: where it is (``input[0].assetId``), the id, and the kind it must be."""

    field: str
    asset_id: str
    kind: str


def asset_refs(model: CreateGeneration) -> list[AssetRef]:
    """Every ``assetId`` the request names, in input order."""
    return [
        AssetRef(f"input[{index}].assetId", item.asset_id, item.type)
        for index, item in enumerate(model.input)
        if isinstance(item, VideoInput | AudioInput) and item.asset_id is not None
    ]


def _problem(ref: AssetRef, asset: Asset | None) -> FieldProblem | None:
    if asset is None:
        return FieldProblem(ref.field, "no such asset")
    if asset.kind != ref.kind:
        return FieldProblem(ref.field, f"names {_a(asset.kind)} asset, not {_a(ref.kind)} one")
    return None


def _a(kind: str) -> str:
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


async def asset_problems(store: Store, organization_id: str, model: CreateGeneration) -> list[FieldProblem]:
    """What is wrong with the request's assetIds (none found, another organization's, wrong kind)."""
    refs = asset_refs(model)
    if not refs:
        return []
    found = await store.assets.find_for_organization(organization_id, {ref.asset_id for ref in refs})
    return [problem for ref in refs if (problem := _problem(ref, found.get(ref.asset_id)))]


async def line_asset_problems(
    store: Store, organization_id: str, lines: Sequence[BatchLine[ValidPayload]]
) -> list[LineProblem]:
    """``asset_problems`` of every batch line, each named with its line (one query for the whole file)."""
    refs = [(line, ref) for line in lines for ref in asset_refs(line.payload.model)]
    if not refs:
        return []
    found = await store.assets.find_for_organization(organization_id, {ref.asset_id for _, ref in refs})
    problems: list[LineProblem] = []
    for line, ref in refs:
        problem = _problem(ref, found.get(ref.asset_id))
        if problem is not None:
            problems.append(
                LineProblem(line.line, line.request_id, f"payload.{problem.field}", problem.message)
            )
    return problems


def local_asset_paths(storage: LocalStorage) -> AssetPath:
    """The engine's way from an accepted asset id to its file; a missing file fails the generation."""

    def resolve(asset_id: str, kind: str) -> Path:
        path: Path | None = None
        if ASSET_ID.fullmatch(asset_id):
            try:
                path = storage.path_for(asset_key(asset_id, kind))
            except ValueError:
                path = None
        if path is None or not path.is_file():
            raise GenerationError(
                ErrorCode.MEDIA_FETCH_FAILED, f"the {kind} asset {asset_id!r} no longer exists"
            )
        return path

    return resolve


async def delete_assets_older_than(store: Store, storage: LocalStorage, cutoff: float) -> int:
    """Retention for uploads: delete each asset created before ``cutoff`` (unix time), file then row."""
    deleted = 0
    moment = datetime.fromtimestamp(cutoff, UTC)
    while old := await store.assets.list_older_than(moment, limit=500):
        for asset in old:
            await storage.delete(asset_key(asset.id, asset.kind))
            deleted += await store.assets.delete(asset.id)
    return deleted
