"""``/v2/models``: the model names this service serves (configuration: ``LIPSYNC_MODEL_ENGINES``)."""

from __future__ import annotations

from fastapi import APIRouter

from lipsync_api.api.deps import CurrentOrg, State
from lipsync_api.api.responses import ERROR_RESPONSES, ModelOut, documented

router = APIRouter(tags=["models"], responses=ERROR_RESPONSES)


@router.get(
    "/v2/models",
    summary="List the served models",
    response_model=None,
    responses=documented(200, list[ModelOut]),
)
async def list_models(state: State, _org: CurrentOrg) -> list[dict[str, str]]:
    """The served model names, each with the engine that renders it."""
    return state.limits.catalog.described()
