"""Run a CLI action against the migrated store of the configured database."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from lipsync_api.config import load_settings
from lipsync_api.store import Store
from lipsync_api.store.migrate import upgrade_to_head

T = TypeVar("T")


def with_store(action: Callable[[Store], Awaitable[T]]) -> T:
    """Apply migrations, open the store, run ``action``, close the store."""

    async def run() -> T:
        settings = load_settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.resolved_database_url
        await upgrade_to_head(url)
        store = Store.open(url)
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(run())
