"""Engine speed: realtime factor, ratio to a bare PyAV decode+encode, cache speed-up, peak memory.

Usage: python bench/engine_speed.py [--media ../shared/media] [--runs 5] [--work /tmp/lipsync-speed]

Inputs are made from ../shared/media/latentsync_demo1_video.mp4 (a real talking head): a 10 s 720x1280 clip
for speed, and a 30 s 1080x1920 clip (the 10 s clip three times) for peak memory. Every figure is the median
of ``--runs`` runs, each in a fresh process; the floor is measured in the same run, interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av

FLOOR, FIRST, CACHED = "floor", "first", "cached"


def prepare(source: Path, out: Path, width: int, height: int, repeat: int) -> Path:
    """Re-encode ``source`` at a size (looped ``repeat`` times) as h264 + aac: a realistic input file."""
    if out.exists():
        return out
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        vs = dst.add_stream("libx264", rate=25, options={"crf": "20", "preset": "veryfast"})
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        frames = [f.reformat(width=width, height=height, format="yuv420p") for f in src.decode(video=0)]
        for index, frame in enumerate(frames * repeat):
            frame.pts, frame.time_base = index, Fraction(1, 25)
            dst.mux(vs.encode(frame))
        dst.mux(vs.encode(None))
    return out


def floor_job(video: Path, audio: Path, out: Path) -> float:
    """Bare PyAV: decode every frame and the speech, encode them at the engine's settings. Returns seconds."""
    start = time.perf_counter()
    with av.open(str(video)) as src, av.open(str(out), "w", options={"movflags": "+faststart"}) as dst:
        stream = src.streams.video[0]
        stream.thread_type = "AUTO"
        fps = Fraction(stream.guessed_rate or 25)
        vs = dst.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast"})
        vs.width, vs.height, vs.pix_fmt = stream.width, stream.height, "yuv420p"
        vs.codec_context.thread_type, vs.codec_context.thread_count = "FRAME", 0  # as the engine's writer
        with av.open(str(audio)) as probe_audio:  # the same output format the engine picks
            rate = min(probe_audio.streams.audio[0].rate, 48000)
            layout = "stereo" if probe_audio.streams.audio[0].channels >= 2 else "mono"
        aus = dst.add_stream("aac", rate=rate, layout=layout)
        for index, frame in enumerate(src.decode(stream)):
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = index, 1 / fps
            dst.mux(vs.encode(frame))
        dst.mux(vs.encode(None))
        with av.open(str(audio)) as speech:
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            for frame in speech.decode(audio=0):
                for chunk in resampler.resample(frame):
                    chunk.pts = None
                    dst.mux(aus.encode(chunk))
        dst.mux(aus.encode(None))
    return time.perf_counter() - start


def pipeline_job(video: Path, audio: Path, work: Path, cache_dir: Path) -> dict[str, float]:
    """One engine generation; returns wall seconds, output seconds and whether the analysis was cached."""
    from lipsync_api.engine.analysis import AnalysisCache
    from lipsync_api.engine.pipeline import render
    from lipsync_api.engine.request import AudioInput, EngineConfig, GenerationRequest

    request = GenerationRequest(video=str(video), audios=(AudioInput(str(audio)),), allow_local_files=True)
    start = time.perf_counter()
    result = render(request, work, EngineConfig(), cache=AnalysisCache(cache_dir, 50 * 1024**3))
    return {
        "seconds": time.perf_counter() - start,
        "duration": result.duration,
        "cached": float(result.analysis_cached),
        **{f"stage_{k}": v for k, v in result.stage_seconds.items()},
    }


def child(args: list[str]) -> None:
    """Runs one job in this (fresh) process and prints its figures and peak RSS as JSON.

    With WARM=1 in the environment, mediapipe is imported before the clock starts, as in a long-lived
    worker process (the import alone takes most of a second; a one-shot CLI run pays it).
    """
    kind, video, audio, work, cache = args[0], Path(args[1]), Path(args[2]), Path(args[3]), Path(args[4])
    if os.environ.get("WARM") == "1":
        import mediapipe  # noqa: F401
    work.mkdir(parents=True, exist_ok=True)
    if kind == FLOOR:
        figures = {"seconds": floor_job(video, audio, work / "floor.mp4")}
    else:
        figures = pipeline_job(video, audio, work, cache)
    figures["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(figures))


def peak_rss_mb() -> float:
    """This process's own peak resident set (VmHWM); ru_maxrss would carry the parent's peak across exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(kind: str, video: Path, audio: Path, work: Path, cache: Path, warm: bool) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(video), str(audio), str(work), str(cache)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "WARM": "1" if warm else "0"},
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure(video: Path, audio: Path, work: Path, runs: int, warm: bool) -> dict[str, list[dict[str, float]]]:
    """Floor, first (cold cache) and cached generations, interleaved run by run."""
    results: dict[str, list[dict[str, float]]] = {FLOOR: [], FIRST: [], CACHED: []}
    for run in range(runs):
        cache = work / f"cache-{run}"
        results[FLOOR].append(run_child(FLOOR, video, audio, work / "floor", cache, warm))
        results[FIRST].append(run_child(FIRST, video, audio, work / f"first-{run}", cache, warm))
        results[CACHED].append(run_child(CACHED, video, audio, work / f"cached-{run}", cache, warm))
        subprocess.run(["rm", "-rf", str(cache)], check=True)
    return results


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def report(name: str, results: dict[str, list[dict[str, float]]]) -> None:
    floor, first, cached = (median(results[k], "seconds") for k in (FLOOR, FIRST, CACHED))
    duration = results[FIRST][0]["duration"]
    ratios = [f["seconds"] / b["seconds"] for f, b in zip(results[FIRST], results[FLOOR], strict=True)]
    speedups = [f["seconds"] / c["seconds"] for f, c in zip(results[FIRST], results[CACHED], strict=True)]
    stages = {k[6:]: round(median(results[FIRST], k), 2) for k in results[FIRST][0] if k.startswith("stage_")}
    print(f"## {name} ({duration:.1f} s of output, {len(ratios)} runs, medians)")
    print("| figure | value |\n|---|---|")
    print(f"| bare PyAV decode + encode (floor) | {floor:.2f} s |")
    print(f"| engine, first generation | {first:.2f} s (realtime factor {duration / first:.2f}) |")
    print(f"| engine, cached video | {cached:.2f} s (realtime factor {duration / cached:.2f}) |")
    print(f"| first / floor (pairwise median) | {statistics.median(ratios):.2f}x |")
    print(f"| first / cached (pairwise median) | {statistics.median(speedups):.2f}x |")
    print(
        f"| peak RSS, first generation | {median(results[FIRST], 'peak_rss_mb'):.0f} MB "
        f"(floor: {median(results[FLOOR], 'peak_rss_mb'):.0f} MB) |"
    )
    print(f"| first generation stages (s) | {stages} |\n", flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--media", type=Path, default=Path("../shared/media"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/lipsync-speed"))
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--warm", action="store_true", help="import mediapipe before the clock (a worker)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    source, speech = args.media / "latentsync_demo1_video.mp4", args.media / "sadtalker_deyu_de.wav"
    clip720 = prepare(source, args.work / "talking_720x1280_10s.mp4", 720, 1280, 1)
    mode = "warm process (mediapipe imported)" if args.warm else "fresh process (one-shot CLI)"
    report(
        f"720x1280, 25 fps, h264 input, {mode}",
        measure(clip720, speech, args.work / "720", args.runs, args.warm),
    )
    if not args.skip_memory:
        long_speech = args.work / "speech_30s.wav"
        if not long_speech.exists():
            subprocess.run([sys.executable, "-c", _LOOP_SPEECH, str(speech), str(long_speech)], check=True)
        clip1080 = prepare(source, args.work / "talking_1080x1920_30s.mp4", 1080, 1920, 3)
        runs = measure(clip1080, long_speech, args.work / "1080", 1, args.warm)
        report(f"1080x1920, 30 s, 25 fps, h264 input, {mode}", runs)


_LOOP_SPEECH = """
import sys, av, numpy as np
from lipsync_api.engine.media import decode_audio
a = decode_audio(__import__('pathlib').Path(sys.argv[1]), 48000, 2)
a = np.concatenate([a] * 4, axis=1)[:, : 48000 * 31]
with av.open(sys.argv[2], 'w') as out:
    s = out.add_stream('pcm_s16le', rate=48000, layout='stereo')
    f = av.AudioFrame.from_ndarray(np.ascontiguousarray(a), format='fltp', layout='stereo')
    f.sample_rate = 48000
    out.mux(s.encode(f)); out.mux(s.encode(None))
"""

if __name__ == "__main__":
    main()
