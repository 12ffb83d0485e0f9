"""``/healthz`` (the process answers) and ``/readyz`` (the database answers)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from lipsync_api.api.deps import State
from lipsync_api.api.responses import ErrorBody, StatusOut, documented

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness", response_model=None, responses=documented(200, StatusOut))
async def healthz() -> dict[str, str]:
    """Always ok while the process serves requests."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database is reachable",
    response_model=None,
    responses=documented(200, StatusOut) | documented(503, ErrorBody, "The database is unreachable"),
)
async def readyz(state: State) -> JSONResponse:
    """200 when a trivial query succeeds, else 503 in the error shape."""
    try:
        async with state.store.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        body = {"statusCode": 503, "message": "database unreachable", "errorCode": "not_ready"}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ok"})
