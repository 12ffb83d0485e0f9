"""``lipsync-api generate --server URL``: one generation on a server, waited for, its output downloaded.

Inputs given as http(s) URLs go as a JSON body; local files are uploaded (multipart ``video``/``audio``
fields, the rest as JSON text fields). The server takes one uploaded audio and none with segments, so
with ``--segments`` each audio must be a URL.
"""

from __future__ import annotations

import json
import mimetypes
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.markup import escape
from rich.table import Table

from lipsync_api.api.schemas import is_http_url
from lipsync_api.cli.console import console, results
from lipsync_api.cli.remote import INTERRUPTED_EXIT, connect, remote_errors
from lipsync_api.cli.requests import load_segments, parse_audio, speaker_hint
from lipsync_api.client import ApiClient
from lipsync_api.client.download import fetch_to
from lipsync_api.client.http import CONNECT_TIMEOUT, READ_TIMEOUT, path_part
from lipsync_api.engine.request import SyncMode

TERMINAL_GENERATION = frozenset({"COMPLETED", "FAILED", "REJECTED", "CANCELED", "CANCELLED"})


@dataclass(frozen=True)
class RemoteRequest:
    """What ``generate`` was asked for, as given on the command line."""

    video: str
    audios: list[str]
    model: str
    sync_mode: SyncMode
    temperature: float
    segments: Path | None = None
    speaker_point: str | None = None
    speaker_frame: int | None = None


@dataclass(frozen=True)
class Upload:
    """A local file sent in the form's ``field``."""

    field: str
    path: Path


def generate_on_server(server: str, api_key: str | None, request: RemoteRequest, output: Path) -> None:
    """``generate --server``: connect, run ``remote_generate``, show errors as every server command does."""
    with connect(server, api_key) as client, remote_errors():
        remote_generate(client, request, output)


def remote_generate(
    client: ApiClient, request: RemoteRequest, output: Path, poll_seconds: float = 1.0
) -> None:
    """Create the generation, wait for its end with a spinner, download its output to ``output``."""
    started = time.monotonic()
    body, uploads = build_body(request)
    generation = _create(client, body, uploads)
    generation_id = str(generation["id"])
    results.print(f"generation {generation_id}: {generation.get('status')}", highlight=False)
    try:
        final = _wait(client, generation, poll_seconds)
    except KeyboardInterrupt:
        console.print(
            f"stopped waiting; generation {generation_id} keeps running on the server "
            f"(GET {client.base_url}/v2/generate/{generation_id})",
            highlight=False,
        )
        raise typer.Exit(INTERRUPTED_EXIT) from None
    if final.get("status") != "COMPLETED" or not final.get("outputUrl"):
        code = f" [{final.get('error_code')}]" if final.get("error_code") else ""
        message = escape(str(final.get("error") or "no output"))
        console.print(f"[bold red]error{escape(code)}:[/] {final.get('status')}: {message}", highlight=False)
        raise typer.Exit(1)
    _download(str(final["outputUrl"]), output)
    _summary(final, output, time.monotonic() - started)


def build_body(request: RemoteRequest) -> tuple[dict[str, Any], list[Upload]]:
    """The CreateGenerationDto for the request, less the inputs that are uploaded (returned apart)."""
    if not 0.0 <= request.temperature <= 1.0:
        raise ValueError("--temperature must be between 0 and 1")
    options: dict[str, Any] = {"sync_mode": request.sync_mode.value, "temperature": request.temperature}
    hint = speaker_hint(request.speaker_point, request.speaker_frame)
    if hint is not None and hint.coordinates is not None:
        x, y = hint.coordinates
        options["active_speaker_detection"] = {
            "auto_detect": False,
            "frame_number": hint.frame_number,
            "coordinates": [x, y],
        }
    body: dict[str, Any] = {"model": request.model, "input": [], "options": options}
    if request.segments is not None:
        load_segments(request.segments)  # refuses a malformed file with a clear message
        body["segments"] = json.loads(request.segments.read_text())
    uploads: list[Upload] = []
    _add_input(body, uploads, "video", request.video, None)
    for value in request.audios:
        audio = parse_audio(value)
        _add_input(body, uploads, "audio", audio.source, audio.ref_id)
    if sum(upload.field == "audio" for upload in uploads) > 1 or (
        request.segments and _uploads_audio(uploads)
    ):
        raise ValueError("with --server, several audio tracks (or --segments) need http(s) URLs, not files")
    return body, uploads


def _uploads_audio(uploads: list[Upload]) -> bool:
    return any(upload.field == "audio" for upload in uploads)


def _add_input(
    body: dict[str, Any], uploads: list[Upload], kind: str, source: str, ref_id: str | None
) -> None:
    if is_http_url(source):
        item: dict[str, Any] = {"type": kind, "url": source}
        if ref_id is not None:
            item["refId"] = ref_id
        body["input"].append(item)
        return
    path = Path(source).expanduser()
    if not path.is_file():
        raise ValueError(f"--{kind} {source}: no such file (give a file or an http(s) URL)")
    uploads.append(Upload(kind, path))


def _create(client: ApiClient, body: dict[str, Any], uploads: list[Upload]) -> dict[str, Any]:
    if not uploads:
        answer: dict[str, Any] = client.post_json("/v2/generate", json=body)
        return answer
    form = {"model": body["model"], "options": json.dumps(body["options"])}
    if body["input"]:
        form["input"] = json.dumps(body["input"])
    if body.get("segments"):
        form["segments"] = json.dumps(body["segments"])
    with ExitStack() as stack:
        files = {
            upload.field: (upload.path.name, stack.enter_context(upload.path.open("rb")), _mime(upload.path))
            for upload in uploads
        }
        with console.status(f"uploading {', '.join(escape(u.path.name) for u in uploads)}"):
            created: dict[str, Any] = client.post_json("/v2/generate", data=form, files=files)
    return created


def _mime(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _wait(client: ApiClient, generation: dict[str, Any], poll_seconds: float) -> dict[str, Any]:
    generation_id, started = str(generation["id"]), time.monotonic()
    with console.status("") as spinner:
        for current in _states(client, generation, poll_seconds):
            seconds = time.monotonic() - started
            spinner.update(f"generation {generation_id}: {current.get('status')} ({seconds:.0f} s)")
            generation = current
    return generation


def _states(client: ApiClient, generation: dict[str, Any], poll_seconds: float) -> Iterator[dict[str, Any]]:
    path = f"/v2/generate/{path_part(str(generation['id']))}"
    yield generation
    while str(generation.get("status")).upper() not in TERMINAL_GENERATION:
        time.sleep(poll_seconds)
        generation = client.get_json(path)
        yield generation


def _download(url: str, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    with (
        httpx.Client(follow_redirects=True, timeout=timeout) as files,
        console.status(f"downloading {output}"),
    ):
        fetch_to(files, url, output)


def _summary(generation: dict[str, Any], output: Path, seconds: float) -> None:
    table = Table(show_header=False, box=None)
    table.add_row("generation", str(generation.get("id")))
    table.add_row("output", str(output))
    if generation.get("outputDuration") is not None:
        table.add_row("duration", f"{float(generation['outputDuration']):.2f} s")
    table.add_row("time", f"{seconds:.1f} s")
    results.print(table)
