"""``/v2/generate`` and ``/v2/generations``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query

from lipsync_api.api.deps import CurrentOrg, State, split_values
from lipsync_api.api.views import generation_view
from lipsync_api.domain.services import create_generation, get_generation

router = APIRouter(tags=["generate"])


@router.post("/v2/generate", status_code=201, summary="Create a generation (JSON body)")
async def create(
    state: State,
    org: CurrentOrg,
    body: Annotated[dict[str, Any], Body(description="A CreateGenerationDto (see API.md).")],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:
    """Accept a generation; the same Idempotency-Key with the same body returns the first one."""
    generation = await create_generation(state.store, org, body, idempotency_key, state.limits)
    return generation_view(generation, state.signer(generation.output_key))


@router.get("/v2/generate/{generation_id}", summary="Get a generation")
async def get(state: State, org: CurrentOrg, generation_id: str) -> dict[str, Any]:
    """The caller's generation (404 for anyone else's)."""
    generation = await get_generation(state.store, org, generation_id)
    return generation_view(generation, state.signer(generation.output_key))


@router.get("/v2/generations", summary="List generations, newest first")
async def list_generations(
    state: State,
    org: CurrentOrg,
    status: Annotated[list[str] | None, Query()] = None,
    ids: Annotated[list[str] | None, Query()] = None,
) -> list[dict[str, Any]]:
    """The caller's generations, filtered by status and ids (repeated keys or comma-separated)."""
    found = await state.store.generations.list_for_organization(
        org.id, statuses=split_values(status), ids=split_values(ids)
    )
    return [generation_view(g, state.signer(g.output_key)) for g in found]
