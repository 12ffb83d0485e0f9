"""Schema migrations applied in code at start-up: Alembic with a Config built here, no alembic.ini."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from lipsync_api.store.database import create_engine_for

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same for every process that migrates this database.
_PG_MIGRATION_LOCK = 0x6C697073796E63


def alembic_config(url: str) -> Config:
    """An Alembic Config for ``url`` pointing at the migrations shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser treats '%' as interpolation; URL-encoded passwords contain it.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade_to_head(url: str) -> None:
    """Bring the database at ``url`` to the newest revision (a no-op when it is there already)."""
    engine = create_engine_for(url, poolclass=NullPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, alembic_config(url))
    finally:
        await engine.dispose()


def upgrade_to_head_blocking(url: str) -> None:
    """``upgrade_to_head`` for callers without an event loop (CLI commands)."""
    asyncio.run(upgrade_to_head(url))


def _upgrade(connection: Connection, config: Config) -> None:
    # Two processes starting together must not both create the tables. Each takes a lock that lasts until
    # its transaction ends; DDL is transactional on both backends, so the second sees the finished schema.
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    elif connection.dialect.name == "sqlite":
        # The sqlite3 module would run DDL outside any transaction; an explicit write transaction makes
        # the whole upgrade one atomic step, waited for (busy timeout) by a concurrent migrator.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None before the first migration)."""
    engine = create_engine_for(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    finally:
        await engine.dispose()
