"""How batches look in the terminal: a live progress bar, a summary, a listing, the failed lines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from lipsync_api.cli.console import console, results

Batch = Mapping[str, Any]
COUNTS = (
    "[green]{task.fields[succeeded]} succeeded[/] · [red]{task.fields[failed]} failed[/] · "
    "{task.fields[pending]} pending"
)


def metrics(batch: Batch) -> dict[str, int]:
    """The batch's counts (missing ones as 0); ``done`` is every line no longer pending."""
    raw = batch.get("metrics") or {}
    counts = {
        name: int(raw.get(name) or 0)
        for name in (
            "total_generations",
            "success_count",
            "failed_count",
            "canceled_count",
            "pending_count",
            "processing_count",
        )
    }
    counts["done"] = max(counts["total_generations"] - counts["pending_count"], 0)
    return counts


class RateColumn(ProgressColumn):
    """Lines finished per minute, from rich's recent-speed estimate."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text("-" if speed is None else f"{speed * 60:.1f} lines/min", style="progress.data.speed")


class BatchProgress:
    """A live bar for one batch: lines done of total, succeeded / failed / pending, rate and time left."""

    def __init__(self, batch_id: str) -> None:
        self._batch_id = batch_id
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn(COUNTS),
            RateColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> BatchProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, batch: Batch) -> None:
        """Show the batch's latest state (the first call sets the starting point of the rate)."""
        counts = metrics(batch)
        description = escape(str(batch.get("status", "?")))
        succeeded, pending = counts["success_count"], counts["pending_count"]
        failed = counts["failed_count"] + counts["canceled_count"]
        total, done = counts["total_generations"], counts["done"]
        if self._task is None:
            self._task = self._progress.add_task(
                description, total=total, completed=done, succeeded=succeeded, failed=failed, pending=pending
            )
            return
        self._progress.update(
            self._task,
            description=description,
            total=total,
            completed=done,
            succeeded=succeeded,
            failed=failed,
            pending=pending,
        )


def print_summary(batch: Batch) -> None:
    """The batch's final (or current) state as a small table on standard output."""
    counts = metrics(batch)
    table = Table(show_header=False, box=None)
    table.add_row("batch", str(batch.get("id", "")))
    table.add_row("status", str(batch.get("status", "")))
    lines = (
        f"{counts['total_generations']}: {counts['success_count']} succeeded, "
        f"{counts['failed_count']} failed, {counts['canceled_count']} canceled, "
        f"{counts['pending_count']} pending"
    )
    table.add_row("lines", lines)
    for label, key in (("created", "created_at"), ("completed", "completed_at"), ("expires", "expires_at")):
        if batch.get(key):
            table.add_row(label, str(batch[key]))
    if batch.get("outputUrl"):
        table.add_row("results", str(batch["outputUrl"]))
    results.print(table)


def print_listing(batches: Iterable[Batch]) -> None:
    """Batches as a table: id, status, created, counts."""
    table = Table("id", "status", "created", "total", "succeeded", "failed", "pending")
    for batch in batches:
        counts = metrics(batch)
        table.add_row(
            str(batch.get("id", "")),
            str(batch.get("status", "")),
            str(batch.get("created_at") or ""),
            str(counts["total_generations"]),
            str(counts["success_count"]),
            str(counts["failed_count"] + counts["canceled_count"]),
            str(counts["pending_count"]),
        )
    results.print(table)


def print_failed_lines(lines: Iterable[Mapping[str, Any]]) -> int:
    """Every results-file line whose generation did not complete, with its error; returns how many."""
    table = Table("request_id", "status", "error_code", "error", title="lines that did not succeed")
    count = 0
    for line in lines:
        response = line.get("response") or {}
        if response.get("status") == "COMPLETED":
            continue
        count += 1
        table.add_row(
            escape(str(line.get("request_id", ""))),
            str(response.get("status", "")),
            str(response.get("error_code") or ""),
            escape(str(response.get("error") or "")),
        )
    if count:
        results.print(table)
    return count
