"""``lipsync-api serve``: the HTTP service (API, scheduler and webhook sender in one process)."""

from __future__ import annotations

import gc
from typing import Annotated

import typer
import uvicorn

from lipsync_api.api.app import create_app
from lipsync_api.api.routers.events import on_server_exit
from lipsync_api.config import load_settings
from lipsync_api.observability.logs import configure_logging


def serve_command(
    host: Annotated[str | None, typer.Option(help="Listen address (default: LIPSYNC_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default: LIPSYNC_PORT).")] = None,
) -> None:
    """Serve the sync.so v2 API; the first start on an empty database prints the default API key."""
    settings = load_settings()
    secrets = [s.get_secret_value() for s in (settings.bootstrap_api_key, settings.url_signing_secret) if s]
    configure_logging(settings.log_level, settings.log_format, secrets=secrets)
    app = create_app(settings)
    # log_config=None: uvicorn's own loggers, the access log included, go through the handler above.
    config = uvicorn.Config(
        app, host=host or settings.host, port=port or settings.port, log_config=None, log_level=None
    )
    server = uvicorn.Server(config)
    on_server_exit(app, lambda: server.should_exit)  # open event streams end when the server stops
    # What the imports built lives as long as the process: out of the collector's sight, a full collection
    # no longer walks it (each took 50-80 ms, stalling every request in flight).
    gc.collect()
    gc.freeze()
    server.run()
