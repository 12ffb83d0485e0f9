"""The scheduler: claim due generations under a lease, run them on the executor, record the results.

Each round re-queues expired leases, expires overdue batches, finalises finished batches, then claims
up to the executor's free workers. While the engine runs, a heartbeat renews the lease every third of
its length; the result is written with the claim's fencing token, so a claim that lost its lease
changes nothing. Interactive work goes first (``claim_next`` orders it so); batch lines are claimed
round-robin across batches: each claim starts after the batch the previous one came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from lipsync_api.errors import ErrorCode, GenerationError
from lipsync_api.executors import EngineResult, Executor
from lipsync_api.finalise import BatchFinaliser, UrlSigner, announcer, generation_delivery
from lipsync_api.notifier import BatchNotifier
from lipsync_api.observability.context import context_with
from lipsync_api.observability.metrics import Metrics
from lipsync_api.storage import Storage
from lipsync_api.store import Store
from lipsync_api.store.leases import Claim
from lipsync_api.store.models import BatchStatus, Generation, GenerationStatus
from lipsync_api.store.types import utc_now

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class SchedulerConfig:
    """How the scheduler claims and retries."""

    owner: str
    lease_seconds: float = 60.0
    max_attempts: int = 3
    backoff_seconds: float = 5.0
    backoff_max_seconds: float = 300.0
    poll_seconds: float = 1.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before the attempt after ``attempt`` (exponential, capped)."""
        return float(min(self.backoff_seconds * 2 ** max(attempt - 1, 0), self.backoff_max_seconds))


def output_key(generation: Generation) -> str:
    """Where a generation's output is stored."""
    name = generation.output_file_name or "output"
    return f"outputs/{generation.organization_id}/{generation.id}/{name}.mp4"


def remove_work(generation_dir: Path, attempt: int | None = None) -> None:
    """Remove a generation's work folders up to ``attempt`` (all when None), then the folder if empty.

    Older attempts' folders are left by a process killed mid-run; newer ones belong to a re-claim.
    """
    for folder in generation_dir.glob("*"):
        if attempt is None or (folder.name.isdigit() and int(folder.name) <= attempt):
            shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        generation_dir.rmdir()


class Scheduler:
    """Claims, runs and records generations for one owner; several may run against one database."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        storage: Storage,
        work_root: Path,
        config: SchedulerConfig,
        signer: UrlSigner,
        *,
        clock: Clock = utc_now,
        metrics: Metrics | None = None,
        notifier: BatchNotifier | None = None,
    ) -> None:
        self._store, self._executor, self._storage = store, executor, storage
        self._work_root, self._config, self._signer, self._clock = work_root, config, signer, clock
        self._finaliser = BatchFinaliser(store, storage, signer)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_batch: str | None = None  # the round-robin position among running batches
        self._metrics, self._notifier = metrics or Metrics(), notifier or BatchNotifier()

    async def run_once(self, now: datetime | None = None) -> int:
        """One round: sweep, finalise, then claim up to the free workers; returns how many were claimed."""
        now = now or self._clock()
        expired = await self._store.leases.requeue_expired(
            now, max_attempts=self._config.max_attempts, announce=announcer(self._signer, now)
        )
        self._metrics.count_lease_expiries(expired)
        await self._finaliser.expire(now)
        for ended in await self._finaliser.finalise_ready(now):
            self._notifier.poke(ended)
        claimed = 0
        while len(self._tasks) < self._executor.workers:
            claim = await self._store.leases.claim_next(
                self._config.owner, self._config.lease_seconds, now, after_batch=self._last_batch
            )
            if claim is None:
                break
            self._last_batch = claim.generation.batch_id or self._last_batch
            await self._start(claim, now)
            claimed += 1
        return claimed

    async def sweep_work(self) -> int:
        """Remove work folders of generations that are no longer running (left by a killed process)."""
        if not self._work_root.is_dir():
            return 0
        removed = 0
        for folder in self._work_root.iterdir():
            row = await self._store.generations.get(folder.name)
            if row is None or row.status != GenerationStatus.PROCESSING:
                await asyncio.to_thread(remove_work, folder)
                removed += 1
        return removed

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Run rounds until ``stop`` is set, then let running generations finish."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # a database hiccup must not kill the scheduler
                log.exception("scheduler round failed")
            await self._wait_for_change(stop)
        await self.wait_idle()

    async def drain(self) -> None:
        """Run until no generation is PENDING or PROCESSING and every finished batch is finalised."""
        while True:
            await self.run_once()
            if self._tasks:
                await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            elif not await self._store.generations.any_active():
                await self._finaliser.finalise_ready(self._clock())
                return
            else:
                await asyncio.sleep(self._config.poll_seconds)

    async def wait_idle(self) -> None:
        """Wait for every generation this scheduler is running."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _wait_for_change(self, stop: asyncio.Event) -> None:
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait(
                {stopper, *self._tasks},
                timeout=self._config.poll_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stopper.cancel()

    async def _start(self, claim: Claim, now: datetime) -> None:
        batch_id = claim.generation.batch_id
        if batch_id is not None:
            await self._store.batches.transition(
                batch_id,
                BatchStatus.PROCESSING,
                from_statuses=(BatchStatus.PENDING, BatchStatus.JOBS_CREATED),
                started_at=now,
            )
        self._notifier.poke(batch_id)
        ids = {"generation_id": claim.generation.id, "batch_id": batch_id}
        task = asyncio.create_task(self._process(claim), context=context_with(ids))  # ids in its logs
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, claim: Claim) -> None:
        generation = claim.generation
        work_dir = self._work_root / generation.id / str(claim.attempt)
        heartbeat = asyncio.create_task(self._heartbeat(generation.id, claim.attempt))
        try:
            await self._run_and_record(claim, work_dir)
        except Exception:  # recording failed: the lease expires and the work comes back
            log.exception("could not record generation %s", generation.id)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await asyncio.to_thread(remove_work, work_dir.parent, claim.attempt)

    async def _run_and_record(self, claim: Claim, work_dir: Path) -> None:
        generation = claim.generation
        try:
            result = await self._executor.submit(generation.id, dict(generation.request), work_dir)
        except GenerationError as error:
            await self._record_error(claim, error)
        except Exception as error:
            log.exception("generation %s crashed", generation.id)
            message = f"unexpected error: {type(error).__name__}: {error}"
            await self._finish(
                claim, GenerationStatus.FAILED, error=message, error_code=ErrorCode.UNHANDLED_ERROR.value
            )
        else:
            await self._record_success(claim, result)

    async def _heartbeat(self, generation_id: str, attempt: int) -> None:
        lease = self._config.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            now = self._clock()
            until = now + timedelta(seconds=lease)
            if not await self._store.leases.renew_lease(
                generation_id, self._config.owner, attempt, until, now=now
            ):
                log.warning("lost the lease on generation %s (attempt %d)", generation_id, attempt)
                return

    async def _record_success(self, claim: Claim, result: EngineResult) -> None:
        self._metrics.observe_stages(result.stage_seconds)
        key = output_key(claim.generation)
        await self._storage.put_file(key, result.output_path)
        await self._finish(
            claim,
            GenerationStatus.COMPLETED,
            engine=result.engine_name,
            output_key=key,
            output_duration=result.duration,
        )

    async def _record_error(self, claim: Claim, error: GenerationError) -> None:
        code = error.error_code or ErrorCode.PIPELINE_FAILED.value
        if error.transient and claim.attempt < self._config.max_attempts:
            not_before = self._clock() + timedelta(seconds=self._config.backoff(claim.attempt))
            await self._store.leases.retry_later(
                claim.generation.id,
                self._config.owner,
                claim.attempt,
                not_before,
                error=error.message,
                error_code=code,
            )
            return
        status = GenerationStatus.REJECTED if error.rejected else GenerationStatus.FAILED
        await self._finish(claim, status, error=error.message, error_code=code)

    async def _finish(
        self,
        claim: Claim,
        status: str,
        *,
        engine: str | None = None,
        output_key: str | None = None,
        output_duration: float | None = None,
        error: str | None = None,
        error_code: str | None = None,
    ) -> bool:
        generation, now = claim.generation, self._clock()
        generation.status, generation.completed_at = status, now
        generation.output_key, generation.output_duration = output_key, output_duration
        generation.error, generation.error_code = error, error_code
        generation.engine = engine or generation.engine
        finished = await self._store.leases.finish(
            generation.id,
            self._config.owner,
            claim.attempt,
            status,
            now=now,
            engine=engine,
            output_key=output_key,
            output_duration=output_duration,
            error=error,
            error_code=error_code,
            deliveries=generation_delivery(generation, self._signer, now),
        )
        self._notifier.poke(generation.batch_id)
        if not finished:
            log.warning(
                "generation %s attempt %d lost its lease; result dropped", generation.id, claim.attempt
            )
        return finished
