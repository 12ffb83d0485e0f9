"""``lipsync-api batch results``: a finished batch's results file and every output, into one folder.

Outputs are named by request_id (``output_name``), fetched several at once, and a rerun skips those
already complete (see ``client.download``). The lines that did not succeed are printed with their errors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from lipsync_api.cli.batch_display import print_failed_lines
from lipsync_api.cli.console import console, results
from lipsync_api.cli.remote import INTERRUPTED_EXIT, ApiKeyOption, ServerOption, connect, remote_errors
from lipsync_api.client import ServerUnreachable
from lipsync_api.client.download import Job, JobResult, Outcome, download_all, fetch_to, output_name
from lipsync_api.client.http import CONNECT_TIMEOUT, READ_TIMEOUT, path_part

RESULTS_NAME = "results.jsonl"
OutputDir = Annotated[Path, typer.Option("-o", "--output", help="Folder for the results file and outputs.")]
Workers = Annotated[int, typer.Option("--jobs", min=1, max=32, help="Files fetched at once.")]


def results_command(
    batch_id: Annotated[str, typer.Argument(help="The batch's id.")],
    output: OutputDir,
    jobs: Workers = 4,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Download a finished batch's results file and every output mp4 into OUTPUT (reruns resume)."""
    with connect(server, api_key) as client, remote_errors():
        batch = client.get_json(f"/v2/batch/{path_part(batch_id)}")
        url = str(batch.get("outputUrl") or "")
        if not url:
            console.print(
                f"[bold red]error:[/] batch {escape(batch_id)} is {batch.get('status')}: "
                "its results exist once it ends "
                f"(follow it: lipsync-api batch status {escape(batch_id)} --wait)",
                highlight=False,
            )
            raise typer.Exit(1)
        timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
        with httpx.Client(follow_redirects=True, timeout=timeout) as files:
            output.mkdir(parents=True, exist_ok=True)
            try:
                fetch_to(files, url, output / RESULTS_NAME)
            except httpx.TransportError as error:
                raise ServerUnreachable(_origin(url), str(error) or type(error).__name__) from None
            lines = read_results(output / RESULTS_NAME)
            outcomes = fetch_outputs(files, output_jobs(lines), output, jobs)
    finish(output, lines, outcomes)


def read_results(path: Path) -> list[dict[str, Any]]:
    """The results file's lines (``{"request_id", "response"}``), in input order."""
    found: list[dict[str, Any]] = []
    for text in path.read_text(encoding="utf-8").splitlines():
        if text.strip():
            line = json.loads(text)
            if isinstance(line, dict):
                found.append(line)
    return found


def output_jobs(lines: Sequence[dict[str, Any]]) -> list[Job]:
    """One download per completed line that has an output URL, named by its request_id."""
    jobs: list[Job] = []
    for line in lines:
        response = line.get("response") or {}
        url = response.get("outputUrl")
        if response.get("status") == "COMPLETED" and url:
            jobs.append(Job(output_name(str(line.get("request_id"))), str(response.get("id")), str(url)))
    return jobs


def fetch_outputs(
    client: httpx.Client | None, jobs: Sequence[Job], folder: Path, workers: int
) -> list[JobResult]:
    """Every job's file into ``folder`` with a progress bar; Ctrl-C stops (exit 130), a rerun resumes."""
    progress = Progress(
        TextColumn("outputs"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
    )
    try:
        with progress:
            task = progress.add_task("outputs", total=len(jobs), note="")

            def advance(result: JobResult) -> None:
                progress.update(task, advance=1, note=escape(result.job.name))

            return download_all(client, jobs, folder, workers=workers, on_result=advance)
    except KeyboardInterrupt:
        console.print("stopped; run the same command again to fetch the rest", highlight=False)
        raise typer.Exit(INTERRUPTED_EXIT) from None


def finish(folder: Path, lines: Sequence[dict[str, Any]], outcomes: Sequence[JobResult]) -> None:
    """Report what is in ``folder`` and the lines that failed; exit 1 when a file could not be fetched."""
    failed_lines = print_failed_lines(lines)
    counts = {outcome: sum(r.outcome is outcome for r in outcomes) for outcome in Outcome}
    results.print(
        f"{folder}: {RESULTS_NAME} ({len(lines)} line(s), {failed_lines} not succeeded) and "
        f"{counts[Outcome.DOWNLOADED] + counts[Outcome.SKIPPED]} output(s): "
        f"{counts[Outcome.DOWNLOADED]} fetched, {counts[Outcome.SKIPPED]} already complete",
        highlight=False,
    )
    failures = [r for r in outcomes if r.outcome is Outcome.FAILED]
    for failure in failures:
        console.print(
            f"[bold red]error:[/] {escape(failure.job.name)}: {escape(failure.error or '')}", highlight=False
        )
    if failures:
        console.print(
            f"{len(failures)} output(s) missing; run the same command again to retry", highlight=False
        )
        raise typer.Exit(1)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
