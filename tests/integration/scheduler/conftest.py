"""Scheduler tests: a migrated store (SQLite; PostgreSQL when configured), local storage, a fake engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from lipsync_api.executors.local import LocalExecutor
from lipsync_api.finalise import UrlSigner
from lipsync_api.scheduler import Scheduler, SchedulerConfig
from lipsync_api.storage.local import LocalStorage
from lipsync_api.store import Store
from lipsync_api.store.models import Organization
from tests.integration.scheduler.fakes import FakeEngine
from tests.integration.store.conftest import database_url, store

__all__ = ["database_url", "store"]

SIGNER = UrlSigner(secret="test-url-secret", ttl_seconds=3600)


@pytest.fixture
def engine() -> Iterator[FakeEngine]:
    """The scripted fake engine; its gate is opened at the end so no worker thread hangs."""
    fake = FakeEngine()
    yield fake
    fake.gate.set()


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    """Outputs and results files in a temporary folder."""
    return LocalStorage(tmp_path / "storage")


@pytest_asyncio.fixture
async def org(store: Store) -> Organization:
    """An organization on the growth plan."""
    return await store.organizations.create("Acme", "growth")


@pytest.fixture
def make_scheduler(
    store: Store, engine: FakeEngine, storage: LocalStorage, tmp_path: Path
) -> Iterator[Callable[..., Scheduler]]:
    """Builds schedulers over the shared store and storage; shuts their executors down afterwards."""
    executors: list[LocalExecutor] = []

    def build(owner: str = "worker-a", workers: int = 2, lease_seconds: float = 30.0) -> Scheduler:
        executor = LocalExecutor(engine, workers)
        executors.append(executor)
        config = SchedulerConfig(
            owner=owner, lease_seconds=lease_seconds, backoff_seconds=0.01, poll_seconds=0.02
        )
        return Scheduler(store, executor, storage, tmp_path / "work" / owner, config, SIGNER)

    yield build
    engine.gate.set()
    for executor in executors:
        executor.shutdown()
