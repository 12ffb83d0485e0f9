"""What a running app holds (store, storage, signer, limits) and the background loops it runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from lipsync_api.api.bootstrap import bootstrap_organization
from lipsync_api.api.upload import remove_stale_spools
from lipsync_api.config import Settings
from lipsync_api.delivery import DeliveryPolicy, WebhookSender
from lipsync_api.domain.assets import delete_assets_older_than, local_asset_paths
from lipsync_api.domain.models_catalog import ModelCatalog
from lipsync_api.domain.plans import plan_table
from lipsync_api.domain.services import ServiceLimits
from lipsync_api.executors import Engine, RealEngine
from lipsync_api.executors.local import LocalExecutor
from lipsync_api.finalise import UrlSigner
from lipsync_api.notifier import BatchNotifier
from lipsync_api.observability.metrics import Metrics
from lipsync_api.scheduler import Scheduler, SchedulerConfig
from lipsync_api.secret_file import load_or_create_secret
from lipsync_api.storage.local import LocalStorage
from lipsync_api.storage.retention import run_retention
from lipsync_api.store import Store
from lipsync_api.store.migrate import upgrade_to_head

log = logging.getLogger(__name__)

# A storage temp file untouched this long was left by a killed writer (a live write keeps it fresh).
STALE_TEMP_SECONDS = 3600.0


@dataclass(frozen=True)
class AppState:
    """Everything a request handler needs, built by the lifespan."""

    settings: Settings
    store: Store
    storage: LocalStorage
    signer: UrlSigner
    limits: ServiceLimits


def service_limits(settings: Settings) -> ServiceLimits:
    """The use cases' limits from the settings."""
    return ServiceLimits(
        max_batch_requests=settings.batch_max_requests,
        max_batch_bytes=settings.batch_max_bytes,
        batch_expiry=timedelta(hours=settings.batch_expiry_hours),
        plans=plan_table(settings.plan_limits),
        catalog=ModelCatalog(settings.model_engines),
    )


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    """The webhook sender's policy from the settings."""
    return DeliveryPolicy(
        connect_timeout=settings.webhook_connect_timeout,
        read_timeout=settings.webhook_read_timeout,
        max_attempts=settings.webhook_max_attempts,
        base_delay=settings.webhook_retry_base_seconds,
        max_delay=max(settings.webhook_retry_max_seconds, settings.webhook_retry_base_seconds),
        allow_private_addresses=settings.webhook_allow_private_addresses,
    )


def _signer(settings: Settings) -> UrlSigner:
    configured = settings.url_signing_secret
    secret = configured.get_secret_value() if configured else load_or_create_secret(settings.data_dir)
    return UrlSigner(secret, settings.output_url_ttl_seconds, settings.base_url)


@contextlib.asynccontextmanager
async def open_state(settings: Settings) -> AsyncIterator[AppState]:
    """Migrate, open the store and storage, bootstrap the first organization; close the store after."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    await upgrade_to_head(url)
    store = Store.open(url)
    try:
        await bootstrap_organization(store, settings)
        storage = LocalStorage(settings.data_dir / "files")
        yield AppState(settings, store, storage, _signer(settings), service_limits(settings))
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def background_loops(
    state: AppState,
    engine: Engine | None,
    *,
    metrics: Metrics | None = None,
    notifier: BatchNotifier | None = None,
) -> AsyncIterator[None]:
    """Run the scheduler (engine on a local executor) and the webhook sender until the block ends."""
    settings = state.settings
    notifier = notifier or BatchNotifier()  # the scheduler and the webhook sender wake each other through it
    engine = engine or RealEngine(settings.engine_config(), asset_path=local_asset_paths(state.storage))
    executor = LocalExecutor(engine, settings.worker_count)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    config = SchedulerConfig(
        owner=owner, lease_seconds=settings.lease_seconds, max_attempts=settings.max_attempts
    )
    work_root = settings.data_dir / "work"
    cutoff = time.time() - STALE_TEMP_SECONDS
    await asyncio.to_thread(remove_stale_spools, settings.data_dir / "tmp", cutoff)
    stale = await state.storage.remove_stale_temp_files(cutoff)
    if stale:
        log.info("removed %d temp files left by interrupted writes", len(stale))
    scheduler = Scheduler(
        state.store,
        executor,
        state.storage,
        work_root,
        config,
        state.signer,
        metrics=metrics,
        notifier=notifier,
    )
    if swept := await scheduler.sweep_work():
        log.info("removed the work folders of %d generations no longer running", swept)
    sender = WebhookSender(state.store, delivery_policy(settings), metrics=metrics)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(scheduler.run_forever(stop)),
        asyncio.create_task(sender.run_forever(stop, wake=notifier.deliveries_wake)),
    ]
    if settings.retention_hours > 0:
        uploads = partial(delete_assets_older_than, state.store, state.storage)
        retention = run_retention(state.storage, settings.retention_hours * 3600, stop, sweeps=[uploads])
        tasks.append(asyncio.create_task(retention))
    try:
        yield
    finally:
        stop.set()
        _, pending = await asyncio.wait(tasks, timeout=settings.shutdown_grace_seconds)
        for task in pending:  # a generation still running: its lease expires and it runs again later
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await sender.aclose()
        await asyncio.to_thread(executor.shutdown)
