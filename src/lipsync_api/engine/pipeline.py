"""render(request) -> an mp4 whose mouth follows the speech, plus what it took to make it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from lipsync_api.engine.analysis import AnalysisCache, VideoAnalysis, analyse_video
from lipsync_api.engine.arrays import Floats
from lipsync_api.engine.fetch import fetch_input
from lipsync_api.engine.frames import open_frames
from lipsync_api.engine.media import (
    MediaInfo,
    VideoStreamInfo,
    check_audio_limits,
    check_video_limits,
    decode_audio,
    output_audio_format,
    probe,
)
from lipsync_api.engine.output import write_output
from lipsync_api.engine.request import EngineConfig, GenerationRequest
from lipsync_api.engine.soundtrack import assemble
from lipsync_api.engine.speech import ANALYSIS_RATE, mouth_targets
from lipsync_api.engine.timeline import ORIGINAL, FramePlan, VideoTiming, plan_timeline
from lipsync_api.errors import ErrorCode, GenerationError, LipsyncError

MAIN = "main"
Progress = Callable[[str, int, int], None]  # stage, done, total


@dataclass(frozen=True)
class RenderResult:
    """The output file and what describes it."""

    output_path: Path
    duration: float
    fps: Fraction
    frame_count: int
    width: int
    height: int
    faces_detected: int
    face_frames: int
    analysis_cached: bool
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Inputs:
    video_path: Path
    video: MediaInfo
    stream: VideoStreamInfo  # the video's picture stream, within the limits
    audio_paths: dict[str, Path]
    audio: dict[str, MediaInfo]


class _Stages:
    """Wall time per pipeline stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def _audio_key(request: GenerationRequest, index: int) -> str:
    ref = request.audios[index].ref_id
    return ref if request.segments and ref else MAIN


def _fetch_and_probe(
    request: GenerationRequest, work_dir: Path, config: EngineConfig, stages: _Stages
) -> _Inputs:
    with stages("fetch"):

        def fetch(source: str) -> Path:
            allow_local = request.allow_local_files or source in request.asset_files
            return fetch_input(source, work_dir, config.fetch, allow_local=allow_local)

        video_path = fetch(request.video)
        audio_paths = {_audio_key(request, i): fetch(a.source) for i, a in enumerate(request.audios)}
    with stages("probe"):
        video = probe(video_path, config.max_fps)
        stream = check_video_limits(video, config)
        audio = {key: probe(path, config.max_fps) for key, path in audio_paths.items()}
        for info in audio.values():
            check_audio_limits(info, config)
    return _Inputs(video_path, video, stream, audio_paths, audio)


def _analyse(
    request: GenerationRequest,
    inputs: _Inputs,
    work_dir: Path,
    cache: AnalysisCache | None,
    progress: Progress | None,
) -> tuple[VideoAnalysis, bool]:
    info = inputs.stream
    report = (lambda done, total: progress("analyse", done, total)) if progress else None
    if cache is not None and cache.fits(info):
        return cache.get_or_build(inputs.video_path, info, request.speaker, report)
    return analyse_video(inputs.video_path, info, request.speaker, work_dir / "analysis", report), False


def _soundtracks(
    request: GenerationRequest, inputs: _Inputs, plan: FramePlan
) -> tuple[Floats, Floats, int, int]:
    """(output track, 16 kHz mono analysis track, output rate, output channels)."""
    formats = [output_audio_format(info.audio) for info in inputs.audio.values() if info.audio is not None]
    rate, channels = max(f[0] for f in formats), max(f[1] for f in formats)
    paths = dict(inputs.audio_paths)
    if request.segments and inputs.video.audio is not None:
        paths[ORIGINAL] = inputs.video_path
    out_sources = {key: decode_audio(path, rate, channels) for key, path in paths.items()}
    mono_sources = {key: decode_audio(path, ANALYSIS_RATE, 1) for key, path in paths.items()}
    track = assemble(plan.audio, out_sources, rate, channels, plan.duration)
    driving = [c for c in plan.audio if c.source != ORIGINAL]  # the original track never drives the mouth
    mono = assemble(driving, mono_sources, ANALYSIS_RATE, 1, plan.duration)[0]
    return track, mono, rate, channels


def _plan(request: GenerationRequest, inputs: _Inputs) -> FramePlan:
    durations = {key: info.audio.duration for key, info in inputs.audio.items() if info.audio is not None}
    if request.segments and inputs.video.audio is not None:
        durations[ORIGINAL] = inputs.video.audio.duration
    return plan_timeline(
        VideoTiming(inputs.stream.frame_count, inputs.stream.fps),
        durations,
        request.sync_mode,
        request.segments,
        MAIN,
    )


def render(
    request: GenerationRequest,
    work_dir: Path,
    config: EngineConfig,
    *,
    cache: AnalysisCache | None = None,
    progress: Progress | None = None,
) -> RenderResult:
    """Make the lip-synced mp4 for ``request`` in ``work_dir``.

    Bad input raises GenerationError with its error code; anything unexpected is raised as
    ``generation_pipeline_failed`` with the original exception chained as its cause.
    """
    try:
        return _render(request, work_dir, config, cache, progress)
    except LipsyncError:
        raise
    except Exception as error:
        message = f"the generation pipeline failed: {type(error).__name__}: {error}"
        raise GenerationError(ErrorCode.PIPELINE_FAILED, message) from error


def _render(
    request: GenerationRequest,
    work_dir: Path,
    config: EngineConfig,
    cache: AnalysisCache | None,
    progress: Progress | None,
) -> RenderResult:
    work_dir.mkdir(parents=True, exist_ok=True)
    output_path = work_dir / request.output_name()
    stages = _Stages()
    inputs = _fetch_and_probe(request, work_dir, config, stages)
    with stages("audio"):
        plan = _plan(request, inputs)  # before the analysis: bad segments fail fast
        track, mono, rate, channels = _soundtracks(request, inputs, plan)
        targets = mouth_targets(mono, plan.fps, plan.frame_count, request.temperature)
    with stages("analyse"):
        analysis, cached = _analyse(request, inputs, work_dir, cache, progress)
    if not np.isfinite(analysis.landmarks[:, 0, 0]).any():
        raise GenerationError(
            ErrorCode.NO_FACE_DETECTED, "no face was found in any frame of the video", rejected=True
        )
    with stages("render"):
        order = [step.source_frame for step in plan.frames]
        frames = open_frames(inputs.video_path, inputs.stream, order, work_dir / "frames")
        try:
            face_frames = write_output(
                output_path, plan, analysis, frames, track, rate, channels, targets, config, progress
            )
        finally:
            frames.close()
    return RenderResult(
        output_path=output_path,
        duration=plan.duration,
        fps=plan.fps,
        frame_count=plan.frame_count,
        width=analysis.width,
        height=analysis.height,
        faces_detected=analysis.faces_detected,
        face_frames=face_frames,
        analysis_cached=cached,
        stage_seconds=stages.seconds,
    )
