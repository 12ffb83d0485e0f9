"""``lipsync-api generate``: one generation on this machine, with a progress bar and a summary."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from lipsync_api.cli.console import clear_errors, console
from lipsync_api.cli.remote import ApiKeyOption
from lipsync_api.cli.remote_generate import RemoteRequest, generate_on_server
from lipsync_api.cli.requests import build_request
from lipsync_api.config import load_settings
from lipsync_api.engine.analysis import AnalysisCache
from lipsync_api.engine.pipeline import RenderResult, render
from lipsync_api.engine.request import SyncMode

STAGE_LABELS = {"analyse": "analysing video", "render": "rendering"}


def generate_command(
    video: Annotated[str, typer.Option(help="Video of a person: a path or an http(s) URL.")],
    audio: Annotated[
        list[str], typer.Option(help="Speech: PATH_OR_URL, or REFID=PATH_OR_URL with --segments.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the mp4.")],
    sync_mode: Annotated[
        SyncMode, typer.Option(help="How a length mismatch is resolved.")
    ] = SyncMode.CUT_OFF,
    segments: Annotated[Path | None, typer.Option(help="JSON file of segments, as in the API.")] = None,
    temperature: Annotated[float, typer.Option(help="Expressiveness, 0 to 1.")] = 0.5,
    speaker_point: Annotated[str | None, typer.Option(help="X,Y of the face to animate.")] = None,
    speaker_frame: Annotated[int | None, typer.Option(help="Frame that --speaker-point refers to.")] = None,
    server: Annotated[
        str | None, typer.Option(help="Run it on this server (URL) instead; local files are uploaded.")
    ] = None,
    api_key: ApiKeyOption = None,
    model: Annotated[str, typer.Option(help="Model name (with --server).")] = "lipsync-2",
) -> None:
    """Make OUTPUT: VIDEO with its mouth following AUDIO (here, or on a server with --server)."""
    if server is not None:
        remote = RemoteRequest(
            video, audio, model, sync_mode, temperature, segments, speaker_point, speaker_frame
        )
        generate_on_server(server, api_key, remote, output)
        return
    with clear_errors():
        settings = load_settings()
        request = build_request(video, audio, sync_mode, temperature, segments, speaker_point, speaker_frame)
        config = settings.engine_config()
        cache = AnalysisCache(settings.cache_dir, settings.analysis_cache_max_bytes)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="lipsync-") as work, _progress() as bar:
            tasks: dict[str, TaskID] = {}

            def report(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(STAGE_LABELS.get(stage, stage), total=total)
                bar.update(tasks[stage], completed=done)

            result = render(request, Path(work), config, cache=cache, progress=report)
            output.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(result.output_path, output)
        _summary(result, output, time.perf_counter() - started)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:>16}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} frames"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _summary(result: RenderResult, output: Path, seconds: float) -> None:
    table = Table(show_header=False, box=None)
    table.add_row("output", str(output))
    table.add_row("duration", f"{result.duration:.2f} s ({result.frame_count} frames)")
    table.add_row("size / fps", f"{result.width}x{result.height} @ {float(result.fps):.3g} fps")
    table.add_row("faces", f"{result.faces_detected} detected; mouth animated in {result.face_frames} frames")
    cached = " (video analysis cached)" if result.analysis_cached else ""
    table.add_row("time", f"{seconds:.2f} s, realtime factor {result.duration / seconds:.2f}x{cached}")
    stages = ", ".join(f"{name} {value:.2f} s" for name, value in result.stage_seconds.items())
    table.add_row("stages", stages)
    console.print(table)
