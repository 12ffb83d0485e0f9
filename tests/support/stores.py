"""A migrated store for tests: apply the migrations, open every repository, close it afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from lipsync_api.store import Store
from lipsync_api.store.migrate import upgrade_to_head


@asynccontextmanager
async def migrated_store(database_url: str) -> AsyncIterator[Store]:
    """All repositories over ``database_url`` after its migrations are applied."""
    await upgrade_to_head(database_url)
    opened = Store.open(database_url)
    try:
        yield opened
    finally:
        await opened.close()
