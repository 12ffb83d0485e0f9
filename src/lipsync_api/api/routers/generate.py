"""``/v2/generate`` (a JSON body, or a multipart form that uploads the media) and ``/v2/generations``."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request

from lipsync_api.api.deps import CurrentOrg, State, split_values
from lipsync_api.api.generate_form import FILE_FIELDS, JSON_FIELDS, TEXT_FIELDS, generate_form, media_parts
from lipsync_api.api.responses import ERROR_RESPONSES, GenerationOut, documented
from lipsync_api.api.routers.events import notifier_of
from lipsync_api.api.runtime import AppState
from lipsync_api.api.upload import is_multipart, spooled_form
from lipsync_api.api.views import generation_view
from lipsync_api.domain.services import create_generation, get_generation
from lipsync_api.domain.upload_service import create_generation_from_uploads
from lipsync_api.errors import InvalidGenerationRequest
from lipsync_api.store.models import Generation, Organization

router = APIRouter(tags=["generate"], responses=ERROR_RESPONSES)

_FORM_FIELDS: dict[str, Any] = {
    **{name: {"type": "string", "format": "binary"} for name in FILE_FIELDS},
    **{name: {"type": "string"} for name in TEXT_FIELDS},
    **{
        name: {"type": "string", "description": f"JSON text ({'an array' if kind is list else 'an object'})"}
        for name, kind in JSON_FIELDS.items()
    },
}
CREATE_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "description": "A CreateGenerationDto (see API.md)."}
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["model"],
                    "properties": _FORM_FIELDS,
                    "description": "video/audio files, or inputs given as JSON text in `input`.",
                }
            },
        },
    }
}


@router.post(
    "/v2/generate",
    status_code=201,
    summary="Create a generation",
    openapi_extra=CREATE_DOC,
    response_model=None,
    responses=documented(201, GenerationOut),
)
async def create(
    state: State,
    org: CurrentOrg,
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:
    """Accept a generation from a JSON body, or from a form whose media are uploaded files.

    The same Idempotency-Key with the same request returns the first generation.
    """
    if is_multipart(request):
        generation = await _create_from_form(state, org, request, idempotency_key)
    else:
        body = await _json_body(request)
        generation = await create_generation(state.store, org, body, idempotency_key, state.limits)
    notifier_of(request.app).work_created()  # claimed now, not at the scheduler's next poll
    return generation_view(generation, state.signer(generation.output_key))


async def _json_body(request: Request) -> object:
    try:
        return json.loads(await request.body())
    except (ValueError, RecursionError):
        raise InvalidGenerationRequest(["body: not valid JSON"]) from None


async def _create_from_form(
    state: AppState, org: Organization, request: Request, idempotency_key: str | None
) -> Generation:
    """Spool the files to the data folder, store them as assets, then accept the generation naming them."""
    parts = media_parts(state.settings.upload_max_bytes, state.settings.data_dir / "tmp")
    async with spooled_form(request, parts) as form:
        fields = generate_form(form)
        return await create_generation_from_uploads(
            state.store, state.storage, org, fields.body, fields.uploads, idempotency_key, state.limits
        )


@router.get(
    "/v2/generate/{generation_id}",
    summary="Get a generation",
    response_model=None,
    responses=documented(200, GenerationOut),
)
async def get(state: State, org: CurrentOrg, generation_id: str) -> dict[str, Any]:
    """The caller's generation (404 for anyone else's)."""
    generation = await get_generation(state.store, org, generation_id)
    return generation_view(generation, state.signer(generation.output_key))


@router.get(
    "/v2/generations",
    summary="List generations, newest first",
    response_model=None,
    responses=documented(200, list[GenerationOut]),
)
async def list_generations(
    state: State,
    org: CurrentOrg,
    status: Annotated[list[str], Query(default_factory=list)],
    ids: Annotated[list[str], Query(default_factory=list)],
) -> list[dict[str, Any]]:
    """The caller's generations, filtered by status and ids (repeated keys or comma-separated)."""
    found = await state.store.generations.list_for_organization(
        org.id, statuses=split_values(status), ids=split_values(ids)
    )
    return [generation_view(g, state.signer(g.output_key)) for g in found]
