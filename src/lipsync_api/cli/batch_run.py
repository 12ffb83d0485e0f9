"""``lipsync-api batch run``: a batch file run on this machine without a server.

The same validator, store, scheduler and engine as the service, with local media paths allowed (a
relative one is taken from the batch file's folder). The embedded store (SQLite) lives in a data folder,
by default ``OUTPUT/.lipsync-data``, which remembers each file it ran by content: running the same file
again continues an interrupted run, or only writes the results of a finished one again (``--fresh``
starts over). The results file and the outputs land in OUTPUT as ``batch results`` leaves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from lipsync_api.api.runtime import AppState, open_state, service_limits
from lipsync_api.api.views import TERMINAL_BATCH, batch_view
from lipsync_api.cli.batch_display import BatchProgress, print_summary
from lipsync_api.cli.batch_local import check_batch_file, resolve_local_paths
from lipsync_api.cli.batch_results import (
    RESULTS_NAME,
    OutputDir,
    Workers,
    fetch_outputs,
    finish,
    read_results,
)
from lipsync_api.cli.console import clear_errors, console, results
from lipsync_api.cli.remote import INTERRUPTED_EXIT
from lipsync_api.client.download import PART_SUFFIX, Job, output_name
from lipsync_api.config import Settings, load_settings
from lipsync_api.domain.assets import local_asset_paths
from lipsync_api.domain.batch_service import create_batch
from lipsync_api.domain.plans import Plan
from lipsync_api.executors import RealEngine
from lipsync_api.executors.local import LocalExecutor
from lipsync_api.scheduler import Scheduler, SchedulerConfig
from lipsync_api.store import Store
from lipsync_api.store.batches import BatchRecord
from lipsync_api.store.migrate import upgrade_to_head
from lipsync_api.store.models import GenerationStatus, Organization
from lipsync_api.store.types import utc_now

DEFAULT_DATA_FOLDER = ".lipsync-data"
RUN_STATE = "batch-run.json"
RUN_ORG_NAME = "batch-run"
PROGRESS_SECONDS = 0.5


@dataclass(frozen=True)
class RunOutcome:
    """A finished run: the Batch object, its results file and the outputs to copy out."""

    batch: dict[str, Any]
    results: bytes
    outputs: list[Job]


def run_command(
    file: Annotated[Path, typer.Argument(help="The .jsonl batch file.", exists=True, dir_okay=False)],
    output: OutputDir,
    data_dir: Annotated[
        Path | None, typer.Option(help="The embedded store's folder (default: OUTPUT/.lipsync-data).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, max=256, help="Generations at once (default: LIPSYNC_WORKER_COUNT).")
    ] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Run again even if this file ran before.")] = False,
    jobs: Workers = 4,
) -> None:
    """Run FILE here, without a server; local media paths allowed. Results and outputs go to OUTPUT."""
    with clear_errors():
        data = resolve_local_paths(file.read_bytes(), file.resolve().parent)
        settings = _settings(output, data_dir, workers)
        checked = check_batch_file(data, service_limits(settings), local=True)
    for problem in checked.problems:
        results.print(escape(problem), highlight=False)
    if checked.problems:
        console.print(f"[bold red]{file}: {len(checked.problems)} problem(s)[/]", highlight=False)
        raise typer.Exit(1)
    try:
        with clear_errors():
            outcome = asyncio.run(_run(settings, data, fresh=fresh))
    except KeyboardInterrupt:
        console.print(
            f"interrupted; finished lines are kept in {settings.data_dir}: "
            "run the same command again to go on",
            highlight=False,
        )
        raise typer.Exit(INTERRUPTED_EXIT) from None
    output.mkdir(parents=True, exist_ok=True)
    part = output / (RESULTS_NAME + PART_SUFFIX)
    part.write_bytes(outcome.results)
    os.replace(part, output / RESULTS_NAME)
    copied = fetch_outputs(None, outcome.outputs, output, jobs)
    print_summary(outcome.batch)
    finish(output, read_results(output / RESULTS_NAME), copied)
    if outcome.batch.get("status") != "COMPLETED":
        raise typer.Exit(1)


def _settings(output: Path, data_dir: Path | None, workers: int | None) -> Settings:
    overrides: dict[str, Any] = {"data_dir": data_dir or output / DEFAULT_DATA_FOLDER, "database_url": None}
    if workers is not None:
        overrides["worker_count"] = workers
    return load_settings(**overrides)


async def _run(settings: Settings, data: bytes, *, fresh: bool) -> RunOutcome:
    org_id = await _organization(settings)
    async with open_state(settings) as state:
        org = await state.store.organizations.get(org_id)
        if org is None:
            raise RuntimeError(f"organization {org_id} vanished from {settings.data_dir}")
        record = await _batch(state, org, data, fresh=fresh)
        if not _finished(record):
            await _drain(state, record)
        found = await state.store.batches.get(record.batch.id)
        if found is None or not _finished(found):
            raise RuntimeError(f"batch {record.batch.id} did not finish")
        return await _outcome(state, found)


async def _organization(settings: Settings) -> str:
    """The data folder's own enterprise organization, made on first use (its id kept in the run state)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    await upgrade_to_head(url)
    store = Store.open(url)
    try:
        state = _load_state(settings.data_dir)
        known = state.get("organization_id")
        if isinstance(known, str) and await store.organizations.get(known) is not None:
            return known
        org = await store.organizations.create(RUN_ORG_NAME, Plan.ENTERPRISE.value)
        _save_state(settings.data_dir, state | {"organization_id": org.id})
        return org.id
    finally:
        await store.close()


async def _batch(state: AppState, org: Organization, data: bytes, *, fresh: bool) -> BatchRecord:
    """The batch this file made before in this data folder, or a new one."""
    digest = hashlib.sha256(data).hexdigest()
    run_state = _load_state(state.settings.data_dir)
    batches = run_state.get("batches") if isinstance(run_state.get("batches"), dict) else {}
    assert isinstance(batches, dict)
    known = batches.get(digest)
    if not fresh and isinstance(known, str):
        found = await state.store.batches.get_for_organization(org.id, known)
        if found is not None:
            _say_resumed(found, state.settings)
            return found
    record = await create_batch(state.store, org, data, None, state.limits, utc_now(), allow_local_files=True)
    _save_state(state.settings.data_dir, run_state | {"batches": batches | {digest: record.batch.id}})
    return record


def _say_resumed(record: BatchRecord, settings: Settings) -> None:
    if _finished(record):
        console.print(
            f"this file already ran as batch {record.batch.id}: writing its results again", highlight=False
        )
        return
    console.print(f"continuing batch {record.batch.id}", highlight=False)
    if record.metrics.processing_count:
        console.print(
            f"{record.metrics.processing_count} line(s) of the interrupted run start again when their lease "
            f"runs out (within {settings.lease_seconds:g} s)",
            highlight=False,
        )


async def _drain(state: AppState, record: BatchRecord) -> None:
    """Run every pending generation of the data folder to its end, with a progress bar of this batch."""
    settings = state.settings
    engine = RealEngine(
        settings.engine_config(), allow_local_files=True, asset_path=local_asset_paths(state.storage)
    )
    executor = LocalExecutor(engine, settings.worker_count)
    owner = f"batch-run:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    config = SchedulerConfig(
        owner=owner, lease_seconds=settings.lease_seconds, max_attempts=settings.max_attempts
    )
    scheduler = Scheduler(
        state.store, executor, state.storage, settings.data_dir / "work", config, state.signer
    )
    try:
        await scheduler.sweep_work()
        drain = asyncio.create_task(scheduler.drain())
        with BatchProgress(record.batch.id) as bar:
            while True:
                current = await state.store.batches.get(record.batch.id)
                if current is not None:
                    bar.update(batch_view(current, None))
                if drain.done():
                    break
                await asyncio.wait({drain}, timeout=PROGRESS_SECONDS)
        await drain
    finally:
        await asyncio.to_thread(executor.shutdown)


async def _outcome(state: AppState, record: BatchRecord) -> RunOutcome:
    key = record.batch.results_key
    assert key is not None
    outputs: list[Job] = []
    for line in await state.store.generations.list_for_batch(record.batch.id):
        path = state.storage.local_path(line.output_key) if line.output_key else None
        if line.status == GenerationStatus.COMPLETED and path is not None:
            outputs.append(Job(output_name(line.request_id or line.id), line.id, str(path)))
    view = batch_view(record, None)  # its signed URL would name a server that is not running
    return RunOutcome(view, await state.storage.read_bytes(key), outputs)


def _finished(record: BatchRecord) -> bool:
    return record.batch.status in TERMINAL_BATCH and record.batch.results_key is not None


def _load_state(folder: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads((folder / RUN_STATE).read_text())
        if isinstance(loaded, dict):
            return loaded
    return {}


def _save_state(folder: Path, state: dict[str, Any]) -> None:
    part = folder / (RUN_STATE + PART_SUFFIX)
    part.write_text(json.dumps(state, indent=1, sort_keys=True))
    os.replace(part, folder / RUN_STATE)
