"""A benchmark-only server: ``lipsync-api serve`` exactly as it runs, with an engine of fixed cost.

Usage: python bench/bench_server.py --engine instant|sleep [--sleep-ms 50]
(settings from LIPSYNC_* variables, as ``lipsync-api serve`` reads them; the benchmarks start it).

The engine never touches media: it sleeps ``--sleep-ms`` (``sleep``; 0 for ``instant``), then hard-links a
prepared output file (a small real mp4, made once in the data folder) into the generation's work folder,
as an engine writes its output there. It exists only in this file: this process runs the package's own
``serve_command`` (its logging, uvicorn set-up and all) with ``create_app`` given this engine; the
package's settings and engine registry know nothing of it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from fastapi import FastAPI

from lipsync_api.cli import serve
from lipsync_api.config import Settings, load_settings
from lipsync_api.executors import EngineResult

OUTPUT_SECONDS = 1.0


class BenchEngine:
    """Returns a prepared file after a fixed wait: whatever else a generation costs is orchestration."""

    def __init__(self, prepared: Path, sleep_seconds: float) -> None:
        self._prepared, self._sleep = prepared, sleep_seconds

    def run(self, generation_id: str, request_json: dict[str, Any], work_dir: Path) -> EngineResult:
        if self._sleep > 0:
            time.sleep(self._sleep)
        work_dir.mkdir(parents=True, exist_ok=True)
        output = work_dir / "output.mp4"
        try:
            os.link(self._prepared, output)
        except OSError:
            shutil.copyfile(self._prepared, output)
        return EngineResult(output, OUTPUT_SECONDS, "bench")


def prepare_output(path: Path) -> Path:
    """A 1 s, 25 fps, 320x240 h264 mp4 (a few kB): the file every generation "renders"."""
    if path.exists():
        return path
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for index in range(int(25 * OUTPUT_SECONDS)):
            pixels = np.full((240, 320, 3), index * 8 % 256, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("instant", "sleep"), default="instant")
    parser.add_argument("--sleep-ms", type=float, default=0.0)
    args = parser.parse_args()
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    prepared = prepare_output(settings.data_dir / "bench-output.mp4")
    engine = BenchEngine(prepared, args.sleep_ms / 1000 if args.engine == "sleep" else 0.0)
    real_create_app = serve.create_app

    def create_app(settings: Settings, **options: Any) -> FastAPI:
        return real_create_app(settings, engine=engine, **options)

    serve.create_app = create_app  # type: ignore[assignment]  # this process only
    serve.serve_command(host=None, port=None)


if __name__ == "__main__":
    main()
