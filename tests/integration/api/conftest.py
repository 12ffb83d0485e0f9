"""API tests: ``create_app`` on a temporary data folder, its lifespan run, a fake engine, an ASGI client."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from fastapi import FastAPI

from lipsync_api.api.app import create_app
from lipsync_api.api.runtime import AppState
from lipsync_api.config import Settings
from tests.integration.scheduler.fakes import FakeEngine
from tests.integration.store.conftest import database_url

__all__ = ["database_url"]

BOOTSTRAP_KEY = "lsk_test_bootstrap_key_0123456789"
BATCH_MAX_BYTES = 4096


@dataclass
class Api:
    """A running app: its client (authenticated as the bootstrap organization), state and fake engine."""

    client: httpx.AsyncClient
    state: AppState
    engine: FakeEngine
    app: FastAPI

    async def key_for(self, plan: str) -> str:
        """A key of a new organization on ``plan``."""
        org = await self.state.store.organizations.create(f"{plan}-org", plan)
        issued = await self.state.store.organizations.create_api_key(org.id, "test")
        return str(issued.key)


def generate_body(audio: str = "https://media.example.com/a.wav", **extra: Any) -> dict[str, Any]:
    """A valid generate body; the fake engine reads its script from the audio URL."""
    return {
        "model": "lipsync-2",
        "input": [
            {"type": "video", "url": "https://media.example.com/v.mp4"},
            {"type": "audio", "url": audio},
        ],
        **extra,
    }


def api_settings(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> Settings:
    """Settings of a test app: its own data folder, the bootstrap key, and ``overrides``."""
    fields: dict[str, Any] = {"data_dir": tmp_path / "data", "bootstrap_api_key": BOOTSTRAP_KEY}
    if database_url is not None:
        fields["database_url"] = database_url
    return Settings(**(fields | overrides))


@contextlib.asynccontextmanager
async def running_api(
    settings: Settings, engine: Any = None, *, run_workers: bool = True
) -> AsyncIterator[Api]:
    """The app with its lifespan running and an authenticated client; a FakeEngine unless one is given.

    At the end the engine's gate (or release) event is set, so no worker thread waits on it.
    """
    engine = FakeEngine() if engine is None else engine
    app = create_app(settings, engine=engine, run_workers=run_workers)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            headers = {"x-api-key": BOOTSTRAP_KEY}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://test", headers=headers
            ) as client:
                yield Api(client, app.state.lipsync, engine, app)
    finally:
        for name in ("gate", "release"):
            event = getattr(engine, name, None)
            if isinstance(event, threading.Event):
                event.set()


@pytest_asyncio.fixture
async def api(tmp_path: Path, database_url: str) -> AsyncIterator[Api]:
    """The app with its lifespan running (scheduler and webhook loops included)."""
    async with running_api(api_settings(tmp_path, database_url, batch_max_bytes=BATCH_MAX_BYTES)) as running:
        yield running
