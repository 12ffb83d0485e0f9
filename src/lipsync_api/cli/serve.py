"""``lipsync-api serve``: the HTTP service (API, scheduler and webhook sender in one process)."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from lipsync_api.api.app import create_app
from lipsync_api.config import load_settings


def serve_command(
    host: Annotated[str | None, typer.Option(help="Listen address (default: LIPSYNC_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default: LIPSYNC_PORT).")] = None,
) -> None:
    """Serve the sync.so v2 API; the first start on an empty database prints the default API key."""
    settings = load_settings()
    app = create_app(settings)
    uvicorn.run(app, host=host or settings.host, port=port or settings.port, log_level="info")
