"""The scheduler: claim due generations under a lease, run them on the executor, record the results.

A round records the results its workers handed back and claims work for its free workers, in one
transaction (``LeaseRepository.record_and_claim``): each result under its claim's fencing token, with its
batch counters and its webhooks, so a claim that lost its lease changes nothing; a batch moves to
PROCESSING in the transaction that claims its first line. Rounds run when a worker hands a result back,
when the API creates work (``BatchNotifier.work_created``), and at least every ``poll_seconds`` (work
created by other processes). Every ``poll_seconds``, and when the API changed a batch (a cancel), a round
first sweeps: re-queues expired leases, expires overdue batches and finalises finished ones; a batch whose
last line a round records is finalised in that round. While the engine runs, a heartbeat renews the lease
every third of its length. Interactive work goes first (``claim_next`` orders it so); batch lines are
claimed round-robin across batches: each claim starts after the batch the previous one came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from lipsync_api.errors import ErrorCode, GenerationError
from lipsync_api.executors import Executor
from lipsync_api.finalise import BatchFinaliser, UrlSigner, announcer, generation_delivery
from lipsync_api.notifier import BatchNotifier
from lipsync_api.observability.context import context_with
from lipsync_api.observability.metrics import Metrics
from lipsync_api.storage import Storage
from lipsync_api.store import Store
from lipsync_api.store.leases import Claim, Ending, RoundResult
from lipsync_api.store.models import Generation, GenerationStatus
from lipsync_api.store.types import utc_now

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

# How many started batches a scheduler remembers (so it moves each to PROCESSING once, not per line).
_STARTED_MEMORY = 1024


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


@dataclass(frozen=True)
class _HandedBack:
    """A worker's result, waiting for the next round to record it."""

    ending: Ending
    batch_id: str | None


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
        self._running = 0  # claims whose worker has not handed its result back yet
        self._done: list[_HandedBack] = []  # results handed back, for the next round to record
        self._last_batch: str | None = None  # the round-robin position among running batches
        self._started: dict[str, None] = {}  # batches known to be PROCESSING (oldest first, bounded)
        self._next_sweep = float("-inf")  # the event loop's time of the next timed sweep
        self._metrics, self._notifier = metrics or Metrics(), notifier or BatchNotifier()
        self._wake = self._notifier.scheduler_wake

    async def run_once(self, now: datetime | None = None) -> int:
        """One round: sweep if due, record what the workers handed back, claim up to the free workers;
        returns how many were claimed.

        Claims are stamped with ``now`` if given, else with the clock's time as each is made.
        """
        if self._sweep_due():
            await self._sweep(now or self._clock())
        return await self._record_and_claim(now)

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
        """Run rounds until ``stop`` is set, then let running generations finish and record them."""
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(lambda _: self._wake.set())
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.run_once()
                except Exception:  # a database hiccup must not kill the scheduler
                    log.exception("scheduler round failed")
                await self._wait_for_change()
            await self.wait_idle()
            await self._record_and_claim(None, claim=False)
        finally:
            stopping.cancel()

    async def drain(self) -> None:
        """Run until no generation is PENDING or PROCESSING and every finished batch is finalised."""
        while True:
            self._wake.clear()
            await self.run_once()
            if self._running or self._done:
                await self._wait_for_change()
            elif not await self._store.generations.any_active():
                await self._finaliser.finalise_ready(self._clock())
                await self.wait_idle()
                return
            else:
                await asyncio.sleep(self._config.poll_seconds)

    async def wait_idle(self) -> None:
        """Wait for every generation this scheduler is running."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _wait_for_change(self) -> None:
        """Until a worker hands a result back, work is created or stop is set; at most ``poll_seconds``."""
        if self._wake.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._config.poll_seconds)

    # --- sweeps ---------------------------------------------------------------------------------------

    def _sweep_due(self) -> bool:
        now = asyncio.get_running_loop().time()
        if not self._notifier.sweep_wanted and now < self._next_sweep:
            return False
        self._notifier.sweep_wanted = False
        self._next_sweep = now + self._config.poll_seconds
        return True

    async def _sweep(self, now: datetime) -> None:
        expired = await self._store.leases.requeue_expired(
            now, max_attempts=self._config.max_attempts, announce=announcer(self._signer, now)
        )
        self._metrics.count_lease_expiries(expired)
        closed = await self._finaliser.expire(now)
        ended = await self._finaliser.finalise_ready(now)
        self._announced(ended, webhooks=bool(expired.failed or closed or ended))

    def _announced(self, ended_batches: Sequence[str], *, webhooks: bool) -> None:
        for batch_id in ended_batches:
            self._notifier.poke(batch_id)
        if webhooks:
            self._notifier.deliveries_stored()

    # --- rounds ---------------------------------------------------------------------------------------

    async def _record_and_claim(self, now: datetime | None, *, claim: bool = True) -> int:
        """Record the results handed back and claim for the free workers, in one transaction.

        Should that transaction fail, each result is recorded on its own, so one that cannot be written
        holds up no other (its lease expires and it runs again, as when any recording fails).
        """
        done, self._done = self._done, []
        free = self._executor.workers - self._running if claim else 0
        if not done and free <= 0:
            return 0
        try:
            result = await self._store.leases.record_and_claim(
                [item.ending for item in done],
                self._config.owner,
                self._config.lease_seconds,
                free,
                now=now,
                clock=self._clock,
                after_batch=self._last_batch,
                started_batches=self._started,
            )
        except Exception:
            if not done:
                raise
            log.exception("recording %d results together failed; recording each alone", len(done))
            for item in done:
                try:
                    single = await self._store.leases.record_and_claim(
                        [item.ending], self._config.owner, self._config.lease_seconds, 0
                    )
                except Exception:
                    log.exception("could not record generation %s", item.ending.generation_id)
                else:
                    await self._after_round([item], single, now or self._clock())
            return 0
        await self._after_round(done, result, now or self._clock())
        return len(result.claims)

    async def _after_round(self, done: Sequence[_HandedBack], result: RoundResult, now: datetime) -> None:
        webhooks = False
        for item, recorded in zip(done, result.recorded, strict=True):
            if not recorded:
                ending = item.ending
                log.warning(
                    "generation %s attempt %d lost its lease; result dropped",
                    ending.generation_id,
                    ending.attempt,
                )
                continue
            webhooks = webhooks or bool(item.ending.deliveries)
            self._notifier.poke(item.batch_id)
        for batch_id in result.started:
            self._started[batch_id] = None
            if len(self._started) > _STARTED_MEMORY:
                del self._started[next(iter(self._started))]
        if result.claims:
            self._last_batch = result.after_batch
        for claim in result.claims:
            self._start(claim)
        ended = await self._finaliser.finalise(result.ended_batches, now) if result.ended_batches else []
        self._announced(ended, webhooks=webhooks or bool(ended))

    # --- workers --------------------------------------------------------------------------------------

    def _start(self, claim: Claim) -> None:
        self._running += 1
        batch_id = claim.generation.batch_id
        self._notifier.poke(batch_id)
        ids = {"generation_id": claim.generation.id, "batch_id": batch_id}
        task = asyncio.create_task(self._process(claim), context=context_with(ids))  # ids in its logs
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, claim: Claim) -> None:
        generation = claim.generation
        work_dir = self._work_root / generation.id / str(claim.attempt)
        heartbeat = asyncio.create_task(self._heartbeat(generation.id, claim.attempt))
        ending: Ending | None = None
        try:
            ending = await self._run(claim, work_dir)
        except Exception:  # the output could not be stored: the lease expires and the work comes back
            log.exception("could not record generation %s", generation.id)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            self._running -= 1
            if ending is not None:
                self._done.append(_HandedBack(ending, generation.batch_id))
            self._wake.set()  # a free worker, and maybe a result to record
            await asyncio.to_thread(remove_work, work_dir.parent, claim.attempt)

    async def _run(self, claim: Claim, work_dir: Path) -> Ending | None:
        """Run the engine; the ending to record, or None when the generation was handed back for a retry."""
        generation = claim.generation
        try:
            result = await self._executor.submit(generation.id, dict(generation.request), work_dir)
        except GenerationError as error:
            return await self._error_ending(claim, error)
        except Exception as error:
            log.exception("generation %s crashed", generation.id)
            message = f"unexpected error: {type(error).__name__}: {error}"
            return self._ending(
                claim, GenerationStatus.FAILED, error=message, error_code=ErrorCode.UNHANDLED_ERROR.value
            )
        self._metrics.observe_stages(result.stage_seconds)
        key = output_key(generation)
        await self._storage.put_file(key, result.output_path)
        return self._ending(
            claim,
            GenerationStatus.COMPLETED,
            engine=result.engine_name,
            output_key=key,
            output_duration=result.duration,
        )

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

    async def _error_ending(self, claim: Claim, error: GenerationError) -> Ending | None:
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
            return None
        status = GenerationStatus.REJECTED if error.rejected else GenerationStatus.FAILED
        return self._ending(claim, status, error=error.message, error_code=code)

    def _ending(
        self,
        claim: Claim,
        status: str,
        *,
        engine: str | None = None,
        output_key: str | None = None,
        output_duration: float | None = None,
        error: str | None = None,
        error_code: str | None = None,
    ) -> Ending:
        """The final state to record, with the webhook announcing it (built from the claimed row)."""
        generation, now = claim.generation, self._clock()
        generation.status, generation.completed_at = status, now
        generation.output_key, generation.output_duration = output_key, output_duration
        generation.error, generation.error_code = error, error_code
        generation.engine = engine or generation.engine
        return Ending(
            generation.id,
            self._config.owner,
            claim.attempt,
            status,
            now,
            engine=engine,
            output_key=output_key,
            output_duration=output_duration,
            error=error,
            error_code=error_code,
            deliveries=generation_delivery(generation, self._signer, now),
        )
