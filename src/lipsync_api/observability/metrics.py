"""Prometheus metrics of one app: a registry of its own (several apps in one process never collide).

Counters and histograms count what this process did (HTTP requests by route template, webhook attempts,
lease expiries it swept, engine stage times). Gauges of the work itself (generations by status, the due
queue, running batches) are read from the database at scrape time, so they hold across restarts and
across processes sharing the database. No label carries an id, a key or a URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy.ext.asyncio import AsyncEngine

from lipsync_api.store.leases import RequeueResult
from lipsync_api.store.models import GenerationStatus
from lipsync_api.store.stats import read_queue_stats

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what every Prometheus server reads; the names need nothing newer
UNMATCHED_ROUTE = "unmatched"
DeliveryOutcome = Literal["delivered", "retried", "failed"]

_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class Metrics:
    """Every metric the service exports, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        reg = self.registry
        self.http_requests = Counter(
            "lipsync_http_requests", "HTTP requests answered.", ["method", "route", "status"], registry=reg
        )
        self.http_duration = Histogram(
            "lipsync_http_request_duration_seconds",
            "Time to answer an HTTP request (a streamed response counts until it ends).",
            ["method", "route"],
            buckets=_HTTP_BUCKETS,
            registry=reg,
        )
        self.engine_stage = Histogram(
            "lipsync_engine_stage_duration_seconds",
            "Wall time of each engine pipeline stage of a successful generation.",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=reg,
        )
        self.webhook_deliveries = Counter(
            "lipsync_webhook_deliveries",
            "Webhook delivery attempts by outcome: delivered, retried (will be tried again), "
            "failed (given up).",
            ["outcome"],
            registry=reg,
        )
        self.lease_expiries = Counter(
            "lipsync_lease_expiries",
            "Expired leases swept by this process: requeued, or failed after the last attempt.",
            ["outcome"],
            registry=reg,
        )
        self.generations = Gauge(
            "lipsync_generations", "Generations in the database by status.", ["status"], registry=reg
        )
        self.queue_depth = Gauge("lipsync_queue_depth", "PENDING generations due now.", registry=reg)
        self.queue_oldest = Gauge(
            "lipsync_queue_oldest_wait_seconds",
            "How long the longest-waiting due PENDING generation has been due (0 when none).",
            registry=reg,
        )
        self.running_batches = Gauge(
            "lipsync_batches_running", "Batches not final (PENDING, JOBS_CREATED, PROCESSING).", registry=reg
        )
        for outcome in ("delivered", "retried", "failed"):
            self.webhook_deliveries.labels(outcome)
        for outcome in ("requeued", "failed"):
            self.lease_expiries.labels(outcome)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request under its route template."""
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_duration.labels(method, route).observe(seconds)

    def observe_stages(self, stage_seconds: Mapping[str, float]) -> None:
        """Record an engine run's seconds per stage."""
        for stage, seconds in stage_seconds.items():
            self.engine_stage.labels(stage).observe(seconds)

    def count_delivery(self, outcome: DeliveryOutcome) -> None:
        """Count one settled webhook attempt."""
        self.webhook_deliveries.labels(outcome).inc()

    def count_lease_expiries(self, result: RequeueResult) -> None:
        """Count what one sweep of expired leases did."""
        self.lease_expiries.labels("requeued").inc(len(result.requeued))
        self.lease_expiries.labels("failed").inc(len(result.failed))

    async def refresh(self, engine: AsyncEngine, now: datetime) -> None:
        """Read the database gauges (call before rendering a scrape)."""
        stats = await read_queue_stats(engine, now)
        for status in GenerationStatus:
            self.generations.labels(status.value).set(stats.generations_by_status.get(status.value, 0))
        self.queue_depth.set(stats.queue_depth)
        self.queue_oldest.set(stats.oldest_wait_seconds)
        self.running_batches.set(stats.running_batches)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
