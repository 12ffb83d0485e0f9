"""The scheduler end to end on a real database: claims, results, retries, leases, batch finalisation."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from lipsync_api.domain.batch_service import cancel_batch
from lipsync_api.finalise import announcer
from lipsync_api.scheduler import Scheduler, remove_work
from lipsync_api.storage.local import LocalStorage
from lipsync_api.store import Store
from lipsync_api.store.models import Batch, BatchStatus, Generation, Organization, WebhookDelivery
from lipsync_api.store.types import utc_now
from tests.integration.scheduler.conftest import SIGNER
from tests.integration.scheduler.fakes import FAKE_ENGINE_NAME, FakeEngine
from tests.integration.store.factories import request_body

pytestmark = pytest.mark.asyncio

TIMEOUT = 20
MakeScheduler = Callable[..., Scheduler]


def line(n: int, audio: str = "ok") -> Generation:
    """Batch line ``n``; ``audio`` scripts the fake engine (reject, transient, crash, gate)."""
    return Generation(
        model="lipsync-2",
        request=request_body(f"https://example.com/{audio}/{n}.wav"),
        request_id=f"video_{n:03d}",
        line_no=n,
    )


async def new_batch(store: Store, org: Organization, scripts: list[str], **fields: Any) -> str:
    """A JOBS_CREATED batch with one line per script, returning its id."""
    batch = Batch(organization_id=org.id, status=BatchStatus.JOBS_CREATED, **fields)
    lines = [line(n, audio) for n, audio in enumerate(scripts, start=1)]
    assert await store.batches.insert(batch, lines)
    return str(batch.id)


async def drain(scheduler: Scheduler) -> None:
    """Drain with a time limit, so a bug fails the test instead of hanging it."""
    await asyncio.wait_for(scheduler.drain(), TIMEOUT)


async def outbox(store: Store) -> list[WebhookDelivery]:
    """Every pending delivery (claimed far in the future so all are due)."""
    due: list[WebhookDelivery] = await store.outbox.claim_due(now=utc_now() + timedelta(days=1), limit=1000)
    return due


async def results(storage: LocalStorage, org: Organization, batch_id: str) -> list[dict[str, Any]]:
    """The batch's results file, parsed."""
    data = await storage.read_bytes(f"results/{org.id}/{batch_id}.jsonl")
    parsed: list[dict[str, Any]] = [json.loads(text) for text in data.decode().splitlines()]
    return parsed


async def test_interactive_generation_completes_with_stored_output_and_webhook(
    store: Store, org: Organization, storage: LocalStorage, make_scheduler: MakeScheduler
) -> None:
    row = Generation(
        organization_id=org.id,
        model="lipsync-2",
        request=request_body(),
        webhook_url="https://hooks.example/g",
        output_file_name="clip_01",
    )
    await store.generations.insert(row)
    await drain(make_scheduler())
    done = await store.generations.get(row.id)
    assert done is not None and done.status == "COMPLETED"
    assert done.output_key == f"outputs/{org.id}/{row.id}/clip_01.mp4"
    assert done.engine == FAKE_ENGINE_NAME and done.output_duration == 1.5 and done.attempts == 1
    assert await storage.exists(done.output_key)
    [hook] = await outbox(store)
    body = json.loads(hook.body)
    assert hook.event == "generation.completed" and hook.target_url == "https://hooks.example/g"
    assert (
        body["id"] == row.id and body["status"] == "COMPLETED" and "/v2/files/outputs/" in body["outputUrl"]
    )


async def test_batch_with_rejected_and_transient_lines_completes_with_results_in_order(
    store: Store, org: Organization, storage: LocalStorage, engine: FakeEngine, make_scheduler: MakeScheduler
) -> None:
    scripts = ["ok", "reject", "ok", "transient", "ok"]
    batch_id = await new_batch(store, org, scripts, webhook_url="https://hooks.example/b")
    await drain(make_scheduler(workers=3))
    record = await store.batches.get(batch_id)
    assert record is not None
    assert record.batch.status == "COMPLETED" and record.batch.completed_at is not None
    assert record.batch.results_key == f"results/{org.id}/{batch_id}.jsonl"
    metrics = record.metrics
    assert (metrics.success_count, metrics.failed_count, metrics.pending_count) == (4, 1, 0)
    lines = await results(storage, org, batch_id)
    assert [item["request_id"] for item in lines] == [f"video_{n:03d}" for n in range(1, 6)]
    statuses = [item["response"]["status"] for item in lines]
    assert statuses == ["COMPLETED", "REJECTED", "COMPLETED", "COMPLETED", "COMPLETED"]
    assert lines[1]["response"]["error_code"] == "generation_no_face_detected"
    assert lines[3]["response"]["attempts"] == 2 and lines[3]["response"]["error_code"] is None
    assert all(item["response"]["batchId"] == batch_id for item in lines)
    assert lines[0]["response"]["outputUrl"] and lines[1]["response"]["outputUrl"] is None
    [hook] = await outbox(store)
    body = json.loads(hook.body)
    assert hook.event == "batch.completed" and body["status"] == "COMPLETED"
    assert body["metrics"]["success_count"] == 4 and body["outputUrl"].startswith("/v2/files/results/")


async def test_batch_of_failures_ends_failed(
    store: Store, org: Organization, storage: LocalStorage, make_scheduler: MakeScheduler
) -> None:
    batch_id = await new_batch(store, org, ["reject", "crash", "always-transient"])
    await drain(make_scheduler())
    record = await store.batches.get(batch_id)
    assert record is not None and record.batch.status == "FAILED"
    assert (record.metrics.success_count, record.metrics.failed_count) == (0, 3)
    codes = [item["response"]["error_code"] for item in await results(storage, org, batch_id)]
    assert codes == [
        "generation_no_face_detected",
        "generation_unhandled_error",
        "generation_media_fetch_failed",
    ]
    lines = await results(storage, org, batch_id)
    assert [item["response"]["status"] for item in lines] == ["REJECTED", "FAILED", "FAILED"]
    assert lines[2]["response"]["attempts"] == 3
    assert await outbox(store) == []


async def test_expired_lease_is_requeued_and_the_stale_owner_cannot_finish(
    store: Store, org: Organization, make_scheduler: MakeScheduler
) -> None:
    batch_id = await new_batch(store, org, ["ok"])
    stale = await store.leases.claim_next("dead-worker", 30.0, utc_now() - timedelta(minutes=5))
    assert stale is not None
    await drain(make_scheduler(owner="worker-b"))
    done = await store.generations.get(stale.generation.id)
    assert done is not None and done.status == "COMPLETED" and done.attempts == 2
    late = await store.leases.finish(stale.generation.id, "dead-worker", stale.attempt, "FAILED")
    assert late is False
    record = await store.batches.get(batch_id)
    assert record is not None and record.batch.status == "COMPLETED"
    assert (record.metrics.success_count, record.metrics.failed_count) == (1, 0)


async def test_cancel_mid_batch_ends_canceled_with_a_results_file(
    store: Store, org: Organization, storage: LocalStorage, engine: FakeEngine, make_scheduler: MakeScheduler
) -> None:
    batch_id = await new_batch(store, org, ["gate", "ok", "ok", "ok"], webhook_url="https://hooks.example/b")
    scheduler = make_scheduler(workers=1)
    assert await scheduler.run_once() == 1
    record = await store.batches.get(batch_id)
    assert record is not None and record.batch.status == "PROCESSING" and record.batch.started_at is not None
    await cancel_batch(store, org, batch_id, utc_now())
    engine.gate.set()
    await drain(scheduler)
    record = await store.batches.get(batch_id)
    assert record is not None and record.batch.status == "CANCELED" and record.batch.completed_at is not None
    assert (record.metrics.success_count, record.metrics.canceled_count) == (1, 3)
    lines = await results(storage, org, batch_id)
    assert [item["response"]["status"] for item in lines] == ["COMPLETED", "CANCELED", "CANCELED", "CANCELED"]
    [hook] = await outbox(store)
    assert hook.event == "batch.canceled" and json.loads(hook.body)["status"] == "CANCELED"


async def test_expired_batch_fails_its_lines_with_timeout_and_is_finalised(
    store: Store, org: Organization, storage: LocalStorage, engine: FakeEngine, make_scheduler: MakeScheduler
) -> None:
    batch_id = await new_batch(store, org, ["ok", "ok", "ok"], expires_at=utc_now() - timedelta(seconds=1))
    await drain(make_scheduler())
    record = await store.batches.get(batch_id)
    assert record is not None and record.batch.status == "FAILED"
    assert (record.metrics.failed_count, record.metrics.pending_count) == (3, 0)
    lines = await results(storage, org, batch_id)
    assert [item["response"]["error_code"] for item in lines] == ["generation_timeout"] * 3
    assert not engine.calls


async def test_interactive_work_is_claimed_before_batch_lines(
    store: Store, org: Organization, make_scheduler: MakeScheduler
) -> None:
    await new_batch(store, org, ["ok", "ok"])
    row = Generation(organization_id=org.id, model="lipsync-2", request=request_body())
    await store.generations.insert(row)
    scheduler = make_scheduler(workers=1)
    assert await scheduler.run_once() == 1
    claimed = await store.generations.get(row.id)
    assert claimed is not None and claimed.status in ("PROCESSING", "COMPLETED")
    await drain(scheduler)


async def test_heartbeat_keeps_a_long_run_leased(
    store: Store, org: Organization, engine: FakeEngine, make_scheduler: MakeScheduler
) -> None:
    row = Generation(
        organization_id=org.id, model="lipsync-2", request=request_body("https://e.com/gate.wav")
    )
    await store.generations.insert(row)
    scheduler = make_scheduler(lease_seconds=0.3)
    assert await scheduler.run_once() == 1
    for _ in range(12):  # another scheduler's sweeps, for four lease lengths
        assert (await store.leases.requeue_expired(utc_now())).requeued == []
        await asyncio.sleep(0.1)
    engine.gate.set()
    await drain(scheduler)
    done = await store.generations.get(row.id)
    assert done is not None and done.status == "COMPLETED" and done.attempts == 1


async def test_run_forever_works_until_stopped(
    store: Store, org: Organization, make_scheduler: MakeScheduler
) -> None:
    batch_id = await new_batch(store, org, ["ok", "ok"])
    stop = asyncio.Event()
    runner = asyncio.create_task(make_scheduler().run_forever(stop))
    for _ in range(200):
        record = await store.batches.get(batch_id)
        if record is not None and record.batch.status == "COMPLETED":
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(runner, TIMEOUT)
    record = await store.batches.get(batch_id)
    assert record is not None and record.batch.status == "COMPLETED"


async def test_running_batches_share_one_worker_round_robin(
    store: Store, org: Organization, engine: FakeEngine, make_scheduler: MakeScheduler
) -> None:
    first = await new_batch(store, org, ["ok"] * 4)
    second = await new_batch(store, org, ["ok"] * 3)
    await drain(make_scheduler(workers=1))
    order = [(await store.generations.get(generation_id)) for generation_id in engine.calls]
    batches = [row.batch_id for row in order if row is not None]
    assert sorted(batches[:2]) == sorted([first, second])
    assert all(a != b for a, b in itertools.pairwise(batches[:7])), batches
    assert batches[-1] == first and batches.count(first) == 4 and batches.count(second) == 3


def hooked_lines(scripts: list[str]) -> list[Generation]:
    """Batch lines that each announce their end to a webhook of their own."""
    lines = [line(n, audio) for n, audio in enumerate(scripts, start=1)]
    for row in lines:
        row.webhook_url = f"https://hooks.example/line/{row.line_no}"
    return lines


async def test_canceled_and_expired_lines_announce_their_end(
    store: Store, org: Organization, engine: FakeEngine, make_scheduler: MakeScheduler
) -> None:
    canceled = Batch(organization_id=org.id, status=BatchStatus.JOBS_CREATED)
    assert await store.batches.insert(canceled, hooked_lines(["ok", "ok"]))
    expired = Batch(
        organization_id=org.id, status=BatchStatus.JOBS_CREATED, expires_at=utc_now() - timedelta(seconds=1)
    )
    assert await store.batches.insert(expired, hooked_lines(["ok"]))
    await cancel_batch(store, org, canceled.id, utc_now(), announcer(SIGNER, utc_now()))
    await drain(make_scheduler())
    hooks = {hook.target_url: json.loads(hook.body) for hook in await outbox(store)}
    assert len(hooks) == 2, hooks
    assert {body["status"] for body in hooks.values()} == {"CANCELED", "FAILED"}
    timed_out = [body for body in hooks.values() if body["status"] == "FAILED"]
    assert timed_out[0]["error_code"] == "generation_timeout"
    assert not engine.calls


async def test_a_generation_out_of_attempts_announces_its_failure(
    store: Store, org: Organization, make_scheduler: MakeScheduler
) -> None:
    row = Generation(
        organization_id=org.id,
        model="lipsync-2",
        request=request_body(),
        webhook_url="https://hooks.example/g",
    )
    await store.generations.insert(row)
    long_ago = utc_now() - timedelta(hours=1)
    for attempt in range(3):  # three workers die holding it; the scheduler's sweep finds the third
        assert await store.leases.claim_next(f"dead-{attempt}", 1.0, long_ago) is not None
        if attempt < 2:
            await store.leases.requeue_expired(long_ago + timedelta(seconds=2))
    await make_scheduler().run_once()
    failed = await store.generations.get(row.id)
    assert failed is not None and failed.status == "FAILED" and failed.error_code == "generation_timeout"
    [hook] = await outbox(store)
    assert hook.target_url == "https://hooks.example/g" and json.loads(hook.body)["status"] == "FAILED"


async def test_work_folders_of_finished_or_unknown_generations_are_swept(
    store: Store, org: Organization, make_scheduler: MakeScheduler, tmp_path: Path
) -> None:
    running = Generation(organization_id=org.id, model="lipsync-2", request=request_body())
    await store.generations.insert(running)
    assert await store.leases.claim_next("worker-z", 600.0) is not None
    scheduler = make_scheduler(owner="sweeper")
    work = tmp_path / "work" / "sweeper"
    for name in (running.id, "0b7c7f0e-0000-4000-8000-000000000000"):
        (work / name / "1").mkdir(parents=True)
        (work / name / "1" / "fetch-video").write_bytes(b"partial")
    assert await scheduler.sweep_work() == 1
    assert sorted(path.name for path in work.iterdir()) == [running.id]


async def test_remove_work_keeps_newer_attempts(tmp_path: Path) -> None:
    for attempt in ("1", "2", "3"):
        (tmp_path / "gen" / attempt).mkdir(parents=True)
    remove_work(tmp_path / "gen", 2)
    assert sorted(path.name for path in (tmp_path / "gen").iterdir()) == ["3"]
    remove_work(tmp_path / "gen")
    assert not (tmp_path / "gen").exists()
