"""``/metrics``: Prometheus text format, no API key (for scrapers); no label carries an id or a secret."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from lipsync_api.api.deps import State
from lipsync_api.observability.metrics import CONTENT_TYPE, Metrics
from lipsync_api.store.types import utc_now

router = APIRouter(tags=["health"])


def metrics_of(app: FastAPI) -> Metrics:
    """The app's metrics (``create_app`` makes them)."""
    metrics: Metrics = app.state.metrics
    return metrics


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def scrape(state: State, request: Request) -> Response:
    """Read the database gauges, then render every metric of this app."""
    metrics = metrics_of(request.app)
    await metrics.refresh(state.store.engine, utc_now())
    return Response(metrics.render(), media_type=CONTENT_TYPE)
