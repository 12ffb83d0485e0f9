"""``lipsync-api eval``: measure an output's sync, closed lips in silence and fidelity outside the mouth."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lipsync_api.cli.console import clear_errors, results
from lipsync_api.engine.evaluate import CLOSED_RATIO, evaluate
from lipsync_api.engine.request import SyncMode


def eval_command(
    output: Annotated[Path, typer.Argument(help="The mp4 to measure.", exists=True, dir_okay=False)],
    audio: Annotated[Path, typer.Option(help="The speech that should drive the mouth.", exists=True)],
    video: Annotated[Path | None, typer.Option(help="The source video, for SSIM outside the mouth.")] = None,
    sync_mode: Annotated[
        SyncMode, typer.Option(help="sync_mode the output was made with.")
    ] = SyncMode.CUT_OFF,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Report audio-visual sync, closed lips in silence and outside-mouth SSIM of OUTPUT."""
    with clear_errors():
        report = evaluate(output, audio, video, sync_mode)
    if as_json:
        typer.echo(json.dumps(asdict(report)))
        return
    table = Table(title=str(output), show_header=False)
    table.add_row("frames (with a face)", f"{report.frames} ({report.face_frames})")
    table.add_row("best lag", f"{report.best_lag:+d} frames (corr {report.correlation_at_best:.3f})")
    table.add_row("correlation at lag 0", f"{report.correlation_at_zero:.3f}")
    closed = "n/a" if report.silent_closed_share is None else f"{report.silent_closed_share:.1%}"
    table.add_row(
        f"silent frames closed (gap < {CLOSED_RATIO:.0%} of width)", f"{closed} of {report.silent_frames}"
    )
    ssim = "n/a (give --video)" if report.ssim_outside_mouth is None else f"{report.ssim_outside_mouth:.4f}"
    table.add_row("SSIM outside mouth and jaw", ssim)
    results.print(table)
