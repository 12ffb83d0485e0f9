"""Engines and sessions: one AsyncEngine per database URL, SQLite tuned for a server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

SQLITE_BUSY_TIMEOUT_MS = 30_000
_WAL_SWITCH_TRIES = 100
_WAL_SWITCH_PAUSE_S = 0.02
# Connections kept open. A server has many requests and workers in flight at once; with SQLAlchemy's default
# (5, overflow closed after each use) every checkout past the fifth opened a connection and closed it again
# (on PostgreSQL a TCP and SSL handshake, on SQLite a thread and its PRAGMAs): more than a polled read costs.
POOL_SIZE = 20
POOL_OVERFLOW = 20


def _in_memory(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def sqlite_url(path: Path) -> str:
    """The async SQLite URL of a database file (the default database lives in the data folder)."""
    return f"sqlite+aiosqlite:///{path.resolve()}"


def is_sqlite(url: str) -> bool:
    """Whether ``url`` names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def create_engine_for(url: str, **kwargs: Any) -> AsyncEngine:
    """An AsyncEngine for ``url``; for SQLite every connection gets WAL, foreign keys and a busy timeout."""
    if "poolclass" not in kwargs and not _in_memory(url):
        kwargs.setdefault("pool_size", POOL_SIZE)
        kwargs.setdefault("max_overflow", POOL_OVERFLOW)
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # WAL lets readers run while one writer writes; the busy timeout makes a second writer wait for the
    # lock instead of failing at once; SQLite leaves foreign keys off unless each connection asks.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        _ensure_wal(cursor)
    finally:
        cursor.close()


def _ensure_wal(cursor: Any) -> None:
    # WAL is a property of the file, so only its first connection switches it. Switching needs an exclusive
    # lock and SQLite answers "database is locked" at once, without the busy timeout, when two fresh
    # connections try together; the loser retries briefly until it sees the winner's WAL.
    for _ in range(_WAL_SWITCH_TRIES):
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.fetchall()
        except Exception as exc:  # the driver's OperationalError, wrapped differently per adapter
            if "locked" not in str(exc).lower():
                raise
            time.sleep(_WAL_SWITCH_PAUSE_S)
    raise RuntimeError("could not switch the SQLite database to WAL mode")


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (repositories hand them out detached)."""
    return async_sessionmaker(engine, expire_on_commit=False)
