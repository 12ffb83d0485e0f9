"""In-process wake-ups: an idle scheduler with a long poll interval claims new work as soon as it is told.

The poll interval here is far longer than the tests' timeouts, so a test passes only through the wake-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from lipsync_api.domain.batch_service import cancel_batch
from lipsync_api.executors.local import LocalExecutor
from lipsync_api.notifier import BatchNotifier
from lipsync_api.scheduler import Scheduler, SchedulerConfig
from lipsync_api.storage.local import LocalStorage
from lipsync_api.store import Store
from lipsync_api.store.models import Batch, BatchStatus, Generation, Organization
from lipsync_api.store.types import utc_now
from tests.integration.scheduler.conftest import SIGNER
from tests.integration.scheduler.fakes import FakeEngine
from tests.integration.store.factories import request_body

pytestmark = pytest.mark.asyncio

LONG_POLL = 600.0  # the scheduler would not look again on its own during the test
TIMEOUT = 15.0


@asynccontextmanager
async def idle_scheduler(
    store: Store, engine: FakeEngine, storage: LocalStorage, work: Path
) -> AsyncIterator[BatchNotifier]:
    """A scheduler running forever with a 10-minute poll; yields the notifier that wakes it."""
    notifier = BatchNotifier()
    executor = LocalExecutor(engine, 2)
    config = SchedulerConfig(owner="waker", poll_seconds=LONG_POLL)
    scheduler = Scheduler(store, executor, storage, work, config, SIGNER, notifier=notifier)
    stop = asyncio.Event()
    runner = asyncio.create_task(scheduler.run_forever(stop))
    try:
        yield notifier
    finally:
        stop.set()
        engine.gate.set()
        await asyncio.wait_for(runner, TIMEOUT)
        executor.shutdown()


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll the database until ``check`` is true; fails after TIMEOUT (far less than the poll interval)."""
    async with asyncio.timeout(TIMEOUT):
        while not await check():
            await asyncio.sleep(0.02)


async def status_of(store: Store, generation_id: str) -> str | None:
    row = await store.generations.get(generation_id)
    return None if row is None else row.status


async def new_generation(store: Store, org: Organization) -> str:
    row = Generation(organization_id=org.id, model="lipsync-2", request=request_body())
    await store.generations.insert(row)
    return str(row.id)


async def test_a_generation_created_on_an_idle_scheduler_is_claimed_when_it_is_woken(
    store: Store, org: Organization, engine: FakeEngine, storage: LocalStorage, tmp_path: Path
) -> None:
    first = await new_generation(store, org)
    async with idle_scheduler(store, engine, storage, tmp_path / "work") as notifier:
        # The first round claims it; the round that records it is the last before the long poll.
        await until(lambda: _is(store, first, "COMPLETED"))
        second = await new_generation(store, org)
        notifier.work_created()
        await until(lambda: _is(store, second, "COMPLETED"))


async def test_a_batch_canceled_while_idle_is_finalised_when_the_scheduler_is_woken(
    store: Store, org: Organization, engine: FakeEngine, storage: LocalStorage, tmp_path: Path
) -> None:
    first = await new_generation(store, org)
    async with idle_scheduler(store, engine, storage, tmp_path / "work") as notifier:
        await until(lambda: _is(store, first, "COMPLETED"))
        # A batch the scheduler has not seen (not woken for it), then canceled: nothing of it runs.
        batch = Batch(organization_id=org.id, status=BatchStatus.JOBS_CREATED)
        line = Generation(model="lipsync-2", request=request_body(), request_id="r1", line_no=1)
        assert await store.batches.insert(batch, [line])
        await cancel_batch(store, org, batch.id, utc_now())
        notifier.batch_changed()

        async def finalised() -> bool:
            record = await store.batches.get(batch.id)
            return record is not None and record.batch.results_key is not None

        await until(finalised)
    assert not engine.calls.get(line.id)


async def _is(store: Store, generation_id: str, status: str) -> bool:
    return await status_of(store, generation_id) == status
