"""Service tests reuse the store tests' databases: SQLite always, PostgreSQL when configured."""

from __future__ import annotations

from tests.integration.store.conftest import database_url, store

__all__ = ["database_url", "store"]
