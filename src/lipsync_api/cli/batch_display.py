"""How batches look in the terminal: a live progress bar, a summary, a listing, the failed lines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeRemainingColumn
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
        return Text("-" if speed is None else f"{speed * 60:.1f}/min", style="progress.data.speed")


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
    """The batch's final (or current) state, one ``label  value`` line each (long URLs kept whole)."""
    counts = metrics(batch)
    rows = [
        ("batch", str(batch.get("id", ""))),
        ("status", str(batch.get("status", ""))),
        (
            "lines",
            f"{counts['total_generations']}: {counts['success_count']} succeeded, "
            f"{counts['failed_count']} failed, {counts['canceled_count']} canceled, "
            f"{counts['pending_count']} pending",
        ),
    ]
    for label, key in (("created", "created_at"), ("completed", "completed_at"), ("expires", "expires_at")):
        if batch.get(key):
            rows.append((label, str(batch[key])))
    if batch.get("outputUrl"):
        rows.append(("results", str(batch["outputUrl"])))
    for label, value in rows:
        results.print(f"{label:<10} {escape(value)}", highlight=False)


LISTING_COLUMNS = "{:<36}  {:<12} {:<27} {:>6} {:>9} {:>6} {:>7}"


def print_listing(batches: Iterable[Batch]) -> None:
    """Batches one per line: id, status, created, and the counts (plain columns: nothing is cut short)."""
    header = LISTING_COLUMNS.format("id", "status", "created", "total", "succeeded", "failed", "pending")
    results.print(header, highlight=False)
    for batch in batches:
        counts = metrics(batch)
        row = LISTING_COLUMNS.format(
            str(batch.get("id", "")),
            str(batch.get("status", "")),
            str(batch.get("created_at") or ""),
            counts["total_generations"],
            counts["success_count"],
            counts["failed_count"] + counts["canceled_count"],
            counts["pending_count"],
        )
        results.print(escape(row), highlight=False)


def print_failed_lines(lines: Iterable[Mapping[str, Any]]) -> int:
    """Every results-file line whose generation did not complete, with its error; returns how many.

    One line each (``request_id: STATUS [error_code] error``), never cut short, so nothing is lost in a
    narrow terminal or a log.
    """
    failed = [line for line in lines if (line.get("response") or {}).get("status") != "COMPLETED"]
    if failed:
        results.print(f"lines that did not succeed ({len(failed)}):", highlight=False)
    for line in failed:
        response = line.get("response") or {}
        code = f" [{response['error_code']}]" if response.get("error_code") else ""
        error = f" {response['error']}" if response.get("error") else ""
        text = f"  {line.get('request_id', '')}: {response.get('status', '?')}{code}{error}"
        results.print(escape(text), highlight=False)
    return len(failed)
