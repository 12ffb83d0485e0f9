"""``lipsync-api batch``: validate a batch file, submit it to a server and follow it, fetch its results,
or run it on this machine without a server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from lipsync_api.api.runtime import service_limits
from lipsync_api.cli.batch_display import BatchProgress, print_listing, print_summary
from lipsync_api.cli.batch_local import check_batch_file, resolve_local_paths
from lipsync_api.cli.batch_results import results_command
from lipsync_api.cli.batch_run import run_command
from lipsync_api.cli.console import clear_errors, console, results
from lipsync_api.cli.remote import INTERRUPTED_EXIT, ApiKeyOption, ServerOption, connect, remote_errors
from lipsync_api.client import ApiClient
from lipsync_api.client.http import path_part
from lipsync_api.client.watch import is_terminal, watch_batch
from lipsync_api.config import load_settings

batch_app = typer.Typer(
    help="Validate, submit, follow and run batch files (JSON Lines).", no_args_is_help=True
)

BatchFile = Annotated[Path, typer.Argument(help="The .jsonl batch file.", exists=True, dir_okay=False)]
BatchId = Annotated[str, typer.Argument(help="The batch's id.")]
Wait = Annotated[bool, typer.Option("--wait", help="Follow the batch with a progress bar until it ends.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the server's JSON instead of a table.")]


@batch_app.command("validate")
def validate_command(
    file: BatchFile,
    local: Annotated[
        bool, typer.Option("--local", help="Check it for `batch run`: local media paths allowed and checked.")
    ] = False,
) -> None:
    """Check FILE offline with the server's own validator; prints every problem with its line number."""
    with clear_errors():
        limits = service_limits(load_settings())
        data = file.read_bytes()
        if local:
            data = resolve_local_paths(data, file.resolve().parent)
        checked = check_batch_file(data, limits, local=local)
    for problem in checked.problems:
        results.print(escape(problem), highlight=False)
    if checked.problems:
        console.print(f"[bold red]{file}: {len(checked.problems)} problem(s)[/]", highlight=False)
        raise typer.Exit(1)
    results.print(f"{file}: valid, {checked.requests} request(s)", highlight=False)


@batch_app.command("submit")
def submit_command(
    file: BatchFile,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and estimate only; nothing runs.")
    ] = False,
    webhook_url: Annotated[str | None, typer.Option(help="Where the batch's end is POSTed.")] = None,
    wait: Wait = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Send FILE to the server as a new batch (or a dry run); prints its id."""
    with connect(server, api_key) as client, remote_errors():
        form = {"dry_run": "true" if dry_run else "false"}
        if webhook_url:
            form["webhook_url"] = webhook_url
        upload = {"input": (file.name, file.read_bytes(), "application/jsonl")}
        answer = client.post_json("/v2/batch", data=form, files=upload)
        if dry_run:
            _print_dry_run(answer)
            return
        batch_id = str(answer["id"])
        total = answer.get("metrics", {}).get("total_generations")
        results.print(f"batch {batch_id}: {answer.get('status')}, {total} generation(s)", highlight=False)
        if not wait:
            console.print(f"follow it: lipsync-api batch status {batch_id} --wait", highlight=False)
            return
        _follow(client, answer)


@batch_app.command("status")
def status_command(
    batch_id: BatchId,
    wait: Wait = False,
    as_json: AsJson = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """Show a batch's status and counts; with --wait, follow it until it ends (exit 1 unless COMPLETED)."""
    with connect(server, api_key) as client, remote_errors():
        batch = client.get_json(f"/v2/batch/{path_part(batch_id)}")
        if wait:
            _follow(client, batch, as_json=as_json)
        else:
            _show(batch, as_json)


@batch_app.command("list")
def list_command(
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Only batches in this status (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 100,
    cursor: Annotated[
        str | None, typer.Option(help="Continue a listing (printed after a full page).")
    ] = None,
    as_json: AsJson = False,
    server: ServerOption = None,
    api_key: ApiKeyOption = None,
) -> None:
    """List your batches, newest first."""
    with connect(server, api_key) as client, remote_errors():
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = [value.upper() for value in status]
        if cursor:
            params["cursor"] = cursor
        response = client.request("GET", "/v2/batch", params=params)
        batches = response.json()
        if as_json:
            typer.echo(json.dumps(batches))
        else:
            print_listing(batches)
        if next_cursor := response.headers.get("x-next-cursor"):
            console.print(f"more: lipsync-api batch list --cursor {next_cursor}", highlight=False)


@batch_app.command("cancel")
def cancel_command(batch_id: BatchId, server: ServerOption = None, api_key: ApiKeyOption = None) -> None:
    """Cancel a running batch: lines not started end CANCELED; lines already running finish."""
    with connect(server, api_key) as client, remote_errors():
        batch = client.post_json(f"/v2/batch/{path_part(batch_id)}/cancel")
        if batch.get("status") != "CANCELED":
            console.print(
                f"batch {escape(batch_id)} had already ended {batch.get('status')}", highlight=False
            )
        print_summary(batch)


batch_app.command("results")(results_command)
batch_app.command("run")(run_command)


def _follow(client: ApiClient, batch: dict[str, Any], *, as_json: bool = False) -> None:
    """The progress bar until the batch ends, then its summary; Ctrl-C stops watching, not the batch."""
    batch_id, final = str(batch["id"]), batch
    try:
        if not is_terminal(batch):
            with BatchProgress(batch_id) as bar:
                bar.update(batch)
                final = watch_batch(client, batch_id, bar.update)
    except KeyboardInterrupt:
        console.print(
            f"stopped watching; batch {batch_id} keeps running on the server.\n"
            f"resume: lipsync-api batch status {batch_id} --wait",
            highlight=False,
        )
        raise typer.Exit(INTERRUPTED_EXIT) from None
    _show(final, as_json)
    if final.get("status") == "COMPLETED":
        console.print(f"download: lipsync-api batch results {batch_id} -o DIR", highlight=False)
    else:
        raise typer.Exit(1)


def _show(batch: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(batch))
    else:
        print_summary(batch)


def _print_dry_run(answer: dict[str, Any]) -> None:
    results.print(f"{answer.get('status')}: {answer.get('total_generations')} generation(s)", highlight=False)
    frames, cost = answer.get("estimatedFrameCount"), answer.get("estimatedGenerationCost")
    if frames is not None:
        results.print(f"estimated frames: {frames}", highlight=False)
    if cost is not None:
        results.print(f"estimated cost: ${cost:.4f}", highlight=False)
    for warning in answer.get("warnings") or []:
        console.print(f"warning: {escape(str(warning))}", highlight=False)
