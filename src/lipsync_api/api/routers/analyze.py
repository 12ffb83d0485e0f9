"""``/v2/analyze/cost``: frame and cost estimates of a generate request, from its media's durations."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from lipsync_api.api.deps import CurrentOrg, State
from lipsync_api.api.responses import ERROR_RESPONSES, EstimateOut, documented
from lipsync_api.errors import InvalidGenerationRequest
from lipsync_api.estimator import Estimator, estimate_generation

router = APIRouter(tags=["analyze"], responses=ERROR_RESPONSES)

BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "A CreateGenerationDto, as for POST /v2/generate.",
                }
            }
        },
    }
}


async def get_estimator(request: Request) -> Estimator:
    """The estimator the lifespan built (its probe cache is shared by every request)."""
    estimator: Estimator = request.app.state.estimator
    return estimator


EstimatorDep = Annotated[Estimator, Depends(get_estimator)]


@router.post(
    "/v2/analyze/cost",
    summary="Estimate a generation's frames and cost",
    openapi_extra=BODY_DOC,
    response_model=None,
    responses=documented(200, list[EstimateOut]),
)
async def estimate_cost(
    state: State, org: CurrentOrg, estimator: EstimatorDep, request: Request
) -> list[dict[str, Any]]:
    """``[{"estimatedFrameCount", "estimatedGenerationCost"}]``; unreadable media is a 400 naming it."""
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        raise InvalidGenerationRequest(["body: not valid JSON"]) from None
    found = await estimate_generation(estimator, body, state.limits, state.store, org.id)
    return [found.wire()]
