"""The app factory: ``create_app(settings)`` builds the FastAPI app; nothing is built at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lipsync_api import __version__
from lipsync_api.api.auth import KeyAuthenticator
from lipsync_api.api.errors import install_error_handlers
from lipsync_api.api.routers import analyze, batch, events, files, generate, health, metrics, models
from lipsync_api.api.runtime import background_loops, open_state
from lipsync_api.config import Settings, load_settings
from lipsync_api.domain.assets import local_asset_paths
from lipsync_api.estimator import open_estimator
from lipsync_api.executors import Engine
from lipsync_api.notifier import BatchNotifier
from lipsync_api.observability.http import instrument
from lipsync_api.observability.logs import register_secret
from lipsync_api.observability.metrics import Metrics


def create_app(settings: Settings, *, engine: Engine | None = None, run_workers: bool = True) -> FastAPI:
    """The service: routes, error mapping, and a lifespan that opens state and runs the workers.

    ``engine`` replaces the built-in engine (tests pass a fake); ``run_workers=False`` serves the API
    without running generations (another process runs them).
    """
    app_metrics, notifier = Metrics(), BatchNotifier()  # per app: tests run several apps in one process

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            open_state(settings) as state,
            open_estimator(settings, local_asset_paths(state.storage)) as estimator,
        ):
            app.state.lipsync = state
            register_secret(state.signer.secret)  # never in a log line, even by mistake
            app.state.estimator = estimator
            authenticator = KeyAuthenticator(state.store.organizations, settings.auth_cache_seconds)
            app.state.authenticator = authenticator
            try:
                if not run_workers:
                    yield
                    return
                async with background_loops(state, engine, metrics=app_metrics, notifier=notifier):
                    yield
            finally:
                await authenticator.aclose()  # key-use records still being written

    app = FastAPI(
        title="lipsync-api",
        version=__version__,
        description="Self-hosted lipsync generation speaking the sync.so v2 API.",
        lifespan=lifespan,
    )
    app.state.metrics, app.state.batch_notifier = app_metrics, notifier
    instrument(app, app_metrics)  # request ids, log context and request metrics around everything
    install_error_handlers(app)
    for module in (generate, batch, events, analyze, models, files, health, metrics):
        app.include_router(module.router)
    return app


def app_from_environment() -> FastAPI:
    """The app for the settings in the environment (uvicorn's ``--factory`` target)."""
    return create_app(load_settings())
