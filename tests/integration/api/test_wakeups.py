"""The API wakes the app's scheduler when it creates work or cancels a batch, and its webhook sender when a
cancel stores line webhooks (the app runs no workers here, so nothing clears the wake-ups)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from lipsync_api.notifier import BatchNotifier
from tests.integration.api.conftest import BATCH_MAX_BYTES, Api, api_settings, generate_body, running_api
from tests.integration.api.test_batch import batch_file, post_batch

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def quiet_api(tmp_path: Path, database_url: str) -> AsyncIterator[Api]:
    """The app without its scheduler and sender."""
    settings = api_settings(tmp_path, database_url, batch_max_bytes=BATCH_MAX_BYTES)
    async with running_api(settings, run_workers=False) as running:
        yield running


def notifier(api: Api) -> BatchNotifier:
    found: BatchNotifier = api.app.state.batch_notifier
    return found


async def test_creating_a_generation_wakes_the_scheduler(quiet_api: Api) -> None:
    wakes = notifier(quiet_api)
    assert not wakes.scheduler_wake.is_set()
    response = await quiet_api.client.post("/v2/generate", json=generate_body())
    assert response.status_code == 201
    assert wakes.scheduler_wake.is_set()


async def test_a_refused_generation_wakes_nothing(quiet_api: Api) -> None:
    response = await quiet_api.client.post("/v2/generate", json={"model": "lipsync-2"})
    assert response.status_code == 400
    assert not notifier(quiet_api).scheduler_wake.is_set()


async def test_creating_and_canceling_a_batch_wake_the_scheduler_and_the_sender(quiet_api: Api) -> None:
    wakes = notifier(quiet_api)
    dry = await post_batch(quiet_api.client, batch_file("https://m.example.com/a.wav"), dry_run="true")
    assert dry.status_code == 200 and not wakes.scheduler_wake.is_set()
    created = await post_batch(quiet_api.client, batch_file("https://m.example.com/a.wav"))
    assert created.status_code == 201
    assert wakes.scheduler_wake.is_set() and not wakes.sweep_wanted
    wakes.scheduler_wake.clear()
    canceled = await quiet_api.client.post(f"/v2/batch/{created.json()['id']}/cancel")
    assert canceled.status_code == 200
    assert wakes.scheduler_wake.is_set() and wakes.sweep_wanted and wakes.deliveries_wake.is_set()
