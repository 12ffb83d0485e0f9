"""Migrations: apply on an empty database, are idempotent, match the models, and tolerate a race."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from lipsync_api.store.database import create_engine_for
from lipsync_api.store.migrate import MIGRATIONS_DIR, current_revision, upgrade_to_head
from lipsync_api.store.models import Base

TABLES = {
    "organizations",
    "api_keys",
    "batches",
    "generations",
    "webhook_deliveries",
    "assets",
    "alembic_version",
}
HEAD = "0002"


def _schema(connection: Connection) -> tuple[set[str], list[object]]:
    tables = set(inspect(connection).get_table_names())
    diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    return tables, diff


async def _inspect(url: str) -> tuple[set[str], list[object]]:
    engine = create_engine_for(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_schema)
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_upgrade_creates_every_table_on_an_empty_database(database_url: str) -> None:
    assert await current_revision(database_url) is None
    await upgrade_to_head(database_url)
    tables, _ = await _inspect(database_url)
    assert tables == TABLES
    assert await current_revision(database_url) == HEAD


@pytest.mark.asyncio
async def test_upgrade_is_idempotent(database_url: str) -> None:
    await upgrade_to_head(database_url)
    await upgrade_to_head(database_url)
    assert await current_revision(database_url) == HEAD


@pytest.mark.asyncio
async def test_migrated_schema_matches_the_models(database_url: str) -> None:
    await upgrade_to_head(database_url)
    _, diff = await _inspect(database_url)
    assert diff == []


@pytest.mark.asyncio
async def test_concurrent_upgrades_on_an_empty_database_both_succeed(database_url: str) -> None:
    await asyncio.gather(*(upgrade_to_head(database_url) for _ in range(3)))
    tables, _ = await _inspect(database_url)
    assert tables == TABLES


def test_migrations_ship_inside_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert list((MIGRATIONS_DIR / "versions").glob("r0001_*.py"))
