"""Store tests run on SQLite always and on PostgreSQL when LIPSYNC_TEST_DATABASE_URL names a server.

Each PostgreSQL test gets a database of its own, created under a random name next to the one the URL
names and dropped afterwards, so tests never see each other's rows or a half-migrated schema.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from lipsync_api.store import Store
from lipsync_api.store.database import sqlite_url
from lipsync_api.store.models import Organization
from tests.support.stores import migrated_store

PG_URL_ENV = "LIPSYNC_TEST_DATABASE_URL"


async def _admin(url: str, statement: str) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest_asyncio.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "store.db")
        return
    base = os.environ.get(PG_URL_ENV)
    if not base:
        pytest.skip(f"{PG_URL_ENV} is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)")
    name = f"lipsync_test_{uuid.uuid4().hex[:16]}"
    await _admin(base, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        await _admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """All repositories over a migrated database."""
    async with migrated_store(database_url) as opened:
        yield opened


@pytest_asyncio.fixture
async def org(store: Store) -> Organization:
    """An organization on the growth plan."""
    return await store.organizations.create("Acme", "growth")


@pytest_asyncio.fixture
async def other_org(store: Store) -> Organization:
    """A second tenant."""
    return await store.organizations.create("Globex", "growth")
