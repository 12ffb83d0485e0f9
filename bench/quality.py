"""Quality table: every clip in ../shared/media with every speech clip (and espeak-ng), engine vs baseline.

Usage: python bench/quality.py [--media ../shared/media] [--out results.json] [--work /tmp/lipsync-quality]
Prints a Markdown table; the figures come from ``lipsync-api eval`` (lipsync_api.engine.evaluate).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

from lipsync_api.engine.analysis import AnalysisCache
from lipsync_api.engine.baseline import mux_baseline
from lipsync_api.engine.evaluate import QualityReport, evaluate
from lipsync_api.engine.pipeline import render
from lipsync_api.engine.request import AudioInput, EngineConfig, GenerationRequest

ESPEAK_TEXT = (
    "Good morning, and welcome. Today we will look at three simple ideas. "
    "First, speak clearly. Second, pause between sentences. Third, smile when you can."
)


def espeak(path: Path) -> Path:
    """Deterministic synthetic speech with real pauses."""
    subprocess.run(["espeak-ng", "-s", "150", "-w", str(path), ESPEAK_TEXT], check=True)
    return path


def row(video: str, audio: str, kind: str, report: QualityReport) -> str:
    closed = "n/a" if report.silent_closed_share is None else f"{report.silent_closed_share:.0%}"
    ssim = "n/a" if report.ssim_outside_mouth is None else f"{report.ssim_outside_mouth:.4f}"
    return (
        f"| {video} | {audio} | {kind} | {report.best_lag:+d} | {report.correlation_at_zero:.2f} | "
        f"{closed} ({report.silent_frames}) | {ssim} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--media", type=Path, default=Path("../shared/media"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/lipsync-quality"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    videos = sorted(args.media.glob("*.mp4"))
    audios = sorted(args.media.glob("*.wav"))
    if shutil.which("espeak-ng"):
        audios.append(espeak(args.work / "espeak_en.wav"))
    config = EngineConfig()
    cache = AnalysisCache(args.work / "cache", 10 * 1024**3)
    print("| video | speech | output | best lag | corr@0 | silent closed (frames) | SSIM outside mouth |")
    print("|---|---|---|---|---|---|---|")
    results = []
    for video in videos:
        for audio in audios:
            name = f"{video.stem}__{audio.stem}"
            request = GenerationRequest(
                video=str(video),
                audios=(AudioInput(str(audio)),),
                allow_local_files=True,
                output_file_name=name,
            )
            started = time.perf_counter()
            result = render(request, args.work / name, config, cache=cache)
            seconds = time.perf_counter() - started
            engine = evaluate(result.output_path, audio, video)
            base = evaluate(mux_baseline(video, audio, args.work / name / "baseline.mp4"), audio, video)
            print(row(video.stem, audio.stem, "engine", engine), flush=True)
            print(row(video.stem, audio.stem, "baseline", base), flush=True)
            results.append(
                {
                    "video": video.stem,
                    "audio": audio.stem,
                    "render_seconds": seconds,
                    "engine": asdict(engine),
                    "baseline": asdict(base),
                }
            )
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
