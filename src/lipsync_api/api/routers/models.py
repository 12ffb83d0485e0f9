"""``/v2/models``: the model names this service serves, all by the built-in engine."""

from __future__ import annotations

from fastapi import APIRouter

from lipsync_api import __version__
from lipsync_api.api.deps import CurrentOrg
from lipsync_api.executors import BUILTIN_ENGINE_NAME

router = APIRouter(tags=["models"])

SYNC_MODEL_NAMES = ("lipsync-2", "lipsync-2-pro", "lipsync-1.9.0-beta", "sync-3")


def served_models() -> list[dict[str, str]]:
    """One entry per served model name (``id``, ``name``, ``type``, ``version``, ``description``)."""
    return [
        {
            "id": name,
            "name": name,
            "type": "lipsync",
            "version": __version__,
            "description": f"served by the built-in {BUILTIN_ENGINE_NAME} engine",
        }
        for name in (*SYNC_MODEL_NAMES, BUILTIN_ENGINE_NAME)
    ]


@router.get("/v2/models", summary="List the served models")
async def list_models(_org: CurrentOrg) -> list[dict[str, str]]:
    """The served model names."""
    return served_models()
