"""The whole pipeline, render(request) -> mp4, on short trims of real clips and on synthetic media."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest

from lipsync_api.engine.analysis import AnalysisCache
from lipsync_api.engine.baseline import mux_baseline
from lipsync_api.engine.evaluate import evaluate
from lipsync_api.engine.media import probe
from lipsync_api.engine.pipeline import RenderResult, render
from lipsync_api.engine.request import (
    AudioInput,
    EngineConfig,
    FetchLimits,
    GenerationRequest,
    SegmentSpec,
    SyncMode,
)
from lipsync_api.errors import ErrorCode, GenerationError
from tests.support import media_factory as mf

CONFIG = EngineConfig()
STAGES = {"fetch", "probe", "analyse", "audio", "render"}
MIN_SYNC_CORRELATION = 0.5
BASELINE_MARGIN = 0.3  # the baseline's correlation at zero lag must trail the output's by at least this


@dataclass(frozen=True)
class OutputProbe:
    """What an output mp4 holds, read with PyAV directly (not through the engine's own probe)."""

    video_codec: str
    pix_fmt: str
    audio_codec: str
    fps: Fraction
    width: int
    height: int
    duration: float  # the container's
    video_end: float  # each stream's start + duration
    audio_end: float
    frame_pts: tuple[int, ...]  # of every decoded frame, in decode output order


def probe_output(path: Path) -> OutputProbe:
    with av.open(str(path)) as container:
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
        video, audio = container.streams.video[0], container.streams.audio[0]
        ends = []
        for stream in (video, audio):
            assert stream.duration is not None and stream.time_base is not None
            ends.append(float(((stream.start_time or 0) + stream.duration) * stream.time_base))
        rate, context = video.average_rate, video.codec_context
        assert rate is not None and container.duration is not None
        return OutputProbe(
            video_codec=context.name,
            pix_fmt=str(context.pix_fmt),
            audio_codec=audio.codec_context.name,
            fps=Fraction(rate),
            width=context.width,
            height=context.height,
            duration=container.duration / av.time_base,
            video_end=ends[0],
            audio_end=ends[1],
            frame_pts=tuple(int(frame.pts or 0) for frame in container.decode(video=0)),
        )


def decoded_frames(path: Path) -> list[npt.NDArray[np.uint8]]:
    with av.open(str(path)) as container:
        frames = container.decode(video=0)
        return [np.asarray(frame.to_ndarray(format="yuv420p"), dtype=np.uint8) for frame in frames]


def seconds(path: Path) -> float:
    """An input's audio (else video) duration, as the engine sees it."""
    info = probe(path)
    stream = info.audio or info.video
    assert stream is not None
    return float(stream.duration)


def assert_valid_output(result: RenderResult, work_dir: Path, name: str) -> OutputProbe:
    """The shared contract of every successful render: file, codecs, rate, size, lengths, stats."""
    assert result.output_path == work_dir / f"{name}.mp4"
    assert result.output_path.is_file()
    out = probe_output(result.output_path)
    frame = 1 / float(result.fps)
    assert (out.video_codec, out.pix_fmt, out.audio_codec) == ("h264", "yuv420p", "aac")
    assert out.fps == result.fps
    assert len(set(np.diff(sorted(out.frame_pts)).tolist())) <= 1, "frame timestamps are not evenly spaced"
    assert (out.width, out.height) == (result.width, result.height)
    assert out.width % 2 == 0 and out.height % 2 == 0
    assert len(out.frame_pts) == result.frame_count
    assert result.duration == pytest.approx(result.frame_count / float(result.fps))
    assert abs(out.duration - result.duration) <= frame, (out.duration, result.duration)
    assert abs(out.video_end - out.audio_end) <= frame, (out.video_end, out.audio_end)
    assert set(result.stage_seconds) >= STAGES, result.stage_seconds
    assert result.faces_detected >= 1
    assert result.face_frames > 0
    return out


def local_request(video: Path, *audios: Path, name: str = "out", **options: object) -> GenerationRequest:
    return GenerationRequest(
        video=str(video),
        audios=tuple(AudioInput(str(a)) for a in audios),
        output_file_name=name,
        allow_local_files=True,
        **options,
    )


@contextmanager
def raises_generation_error(code: ErrorCode, *, rejected: bool) -> Iterator[None]:
    with pytest.raises(GenerationError) as caught:
        yield
    error = caught.value
    assert error.error_code == code.value, error.message
    assert error.rejected is rejected, error.message
    assert error.message


# --- output properties on real clips -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("clip", "expected_fps"),
    [("face3_clip", 25), ("face1_vfr_clip", 30), ("small_face_clip", 25)],
)
def test_output_properties(
    request: pytest.FixtureRequest,
    clip: str,
    expected_fps: int,
    speech_en: Path,
    analysis_cache: AnalysisCache,
    tmp_path: Path,
) -> None:
    video: Path = request.getfixturevalue(clip)
    source = probe(video).video
    assert source is not None
    if clip == "face1_vfr_clip":
        assert source.variable_rate, "the trimmed clip should still have a variable frame rate"
    req = local_request(video, speech_en, name=f"out_{clip}")
    result = render(req, tmp_path, CONFIG, cache=analysis_cache)
    assert result.fps == expected_fps
    assert_valid_output(result, tmp_path, f"out_{clip}")
    # cut_off: the 2 s clip is shorter than the 2.5 s speech
    assert abs(result.duration - source.duration) <= 1 / expected_fps


# --- sync modes --------------------------------------------------------------------------------------


def _expected_length(mode: SyncMode, video: float, audio: float) -> float:
    """API.md's sync_mode table: the output's length."""
    if mode is SyncMode.CUT_OFF:
        return min(video, audio)
    if mode is SyncMode.SILENCE:
        return video
    return audio  # bounce, loop, remap


@pytest.mark.parametrize(
    "audio_fixture", ["speech_en", "speech_en_short"], ids=["audio_longer", "audio_shorter"]
)
@pytest.mark.parametrize("mode", list(SyncMode), ids=[m.value for m in SyncMode])
def test_sync_mode_output_length(
    request: pytest.FixtureRequest,
    mode: SyncMode,
    audio_fixture: str,
    face3_clip: Path,
    analysis_cache: AnalysisCache,
    tmp_path: Path,
) -> None:
    audio: Path = request.getfixturevalue(audio_fixture)
    video_seconds, audio_seconds = seconds(face3_clip), seconds(audio)
    assert (audio_seconds > video_seconds) == (audio_fixture == "speech_en")
    req = local_request(face3_clip, audio, name=f"mode_{mode.value}", sync_mode=mode)
    result = render(req, tmp_path, CONFIG, cache=analysis_cache)
    assert_valid_output(result, tmp_path, f"mode_{mode.value}")
    expected = _expected_length(mode, video_seconds, audio_seconds)
    assert abs(result.duration - expected) <= 1 / float(result.fps), (result.duration, expected)


# --- segments ----------------------------------------------------------------------------------------


def _segment_request(
    video: Path, first: Path, second: Path, segments: tuple[SegmentSpec, ...]
) -> GenerationRequest:
    return GenerationRequest(
        video=str(video),
        audios=(AudioInput(str(first), ref_id="a1"), AudioInput(str(second), ref_id="a2")),
        segments=segments,
        output_file_name="segments",
        allow_local_files=True,
    )


def test_segments_follow_the_video_once(
    face3_clip: Path, speech_en: Path, speech_en_short: Path, analysis_cache: AnalysisCache, tmp_path: Path
) -> None:
    segments = (
        SegmentSpec(0.0, 0.9, "a1", audio_start=0.5, audio_end=1.4),
        SegmentSpec(1.0, 2.0, "a2"),
    )
    result = render(
        _segment_request(face3_clip, speech_en, speech_en_short, segments),
        tmp_path,
        CONFIG,
        cache=analysis_cache,
    )
    assert_valid_output(result, tmp_path, "segments")
    assert abs(result.duration - seconds(face3_clip)) <= 1 / float(result.fps)


def test_overlapping_segments_are_rejected(
    face3_clip: Path, speech_en: Path, speech_en_short: Path, analysis_cache: AnalysisCache, tmp_path: Path
) -> None:
    segments = (SegmentSpec(0.0, 1.2, "a1"), SegmentSpec(1.0, 2.0, "a2"))
    with raises_generation_error(ErrorCode.INVALID_SEGMENTS, rejected=True):
        render(
            _segment_request(face3_clip, speech_en, speech_en_short, segments),
            tmp_path,
            CONFIG,
            cache=analysis_cache,
        )


# --- sync quality --------------------------------------------------------------------------------------


@pytest.mark.parametrize("speech", ["speech_en", "espeak_speech"])
def test_mouth_follows_the_speech_better_than_the_baseline(
    request: pytest.FixtureRequest,
    speech: str,
    face3_clip: Path,
    analysis_cache: AnalysisCache,
    tmp_path: Path,
) -> None:
    audio: Path = request.getfixturevalue(speech)
    result = render(local_request(face3_clip, audio, name="synced"), tmp_path, CONFIG, cache=analysis_cache)
    report = evaluate(result.output_path, audio, face3_clip)
    baseline = evaluate(mux_baseline(face3_clip, audio, tmp_path / "baseline.mp4"), audio)
    numbers = (
        f"output best_lag={report.best_lag} r0={report.correlation_at_zero:.3f}; "
        f"baseline r0={baseline.correlation_at_zero:.3f}"
    )
    assert report.face_frames == report.frames, numbers
    assert abs(report.best_lag) <= 1, numbers
    assert report.correlation_at_zero >= MIN_SYNC_CORRELATION, numbers
    assert baseline.correlation_at_zero <= report.correlation_at_zero - BASELINE_MARGIN, numbers


# --- analysis cache and determinism ------------------------------------------------------------------


def test_second_render_of_a_video_reuses_its_analysis(
    small_face_clip: Path, speech_en: Path, speech_en_short: Path, tmp_path: Path
) -> None:
    cache = AnalysisCache(tmp_path / "cache", 1024**3)
    reports: list[tuple[str, int, int]] = []
    first = render(
        local_request(small_face_clip, speech_en),
        tmp_path / "first",
        CONFIG,
        cache=cache,
        progress=lambda stage, done, total: reports.append((stage, done, total)),
    )
    second = render(local_request(small_face_clip, speech_en_short), tmp_path / "second", CONFIG, cache=cache)
    assert (first.analysis_cached, second.analysis_cached) == (False, True)
    assert second.faces_detected == first.faces_detected
    assert_valid_output(second, tmp_path / "second", "out")
    finals = {stage: (done, total) for stage, done, total in reports}
    assert finals["render"] == (first.frame_count, first.frame_count)
    assert finals["analyse"][0] == finals["analyse"][1]


def test_same_request_renders_identical_frames(
    small_face_clip: Path, speech_en: Path, tmp_path: Path
) -> None:
    req = local_request(small_face_clip, speech_en, sync_mode=SyncMode.BOUNCE)
    first = render(req, tmp_path / "one", CONFIG)
    second = render(req, tmp_path / "two", CONFIG)
    a, b = decoded_frames(first.output_path), decoded_frames(second.output_path)
    assert len(a) == len(b) == first.frame_count
    for index, (x, y) in enumerate(zip(a, b, strict=True)):
        assert np.array_equal(x, y), f"frame {index} differs"


# --- bad media ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bad-media")


@pytest.fixture(scope="module")
def faceless_clip(bad_dir: Path) -> Path:
    """media_factory's moving shapes: a valid video (with sound) that shows no face."""
    return mf.write_video(bad_dir / "shapes.mp4", frames=25, audio_seconds=1.0)


def _undecodable(kind: str, directory: Path, clip: Path) -> Path:
    if kind == "empty":
        return mf.write_empty(directory / "empty.mp4")
    if kind == "text":
        return mf.write_text(directory / "text.mp4")
    return mf.write_truncated(clip, directory / "truncated.mp4")  # cut before the moov box


@pytest.mark.parametrize("kind", ["empty", "text", "truncated"])
def test_undecodable_video_is_unsupported(
    kind: str, bad_dir: Path, faceless_clip: Path, tone_wav: Path, tmp_path: Path
) -> None:
    video = _undecodable(kind, bad_dir, faceless_clip)
    with raises_generation_error(ErrorCode.MEDIA_UNSUPPORTED, rejected=True):
        render(local_request(video, tone_wav), tmp_path, CONFIG)


def test_audio_only_file_as_video(tone_wav: Path, tmp_path: Path) -> None:
    with raises_generation_error(ErrorCode.VIDEO_MISSING, rejected=True):
        render(local_request(tone_wav, tone_wav), tmp_path, CONFIG)


def test_video_only_file_as_audio(faceless_clip: Path, bad_dir: Path, tmp_path: Path) -> None:
    silent_video = mf.write_video(bad_dir / "no_audio.mp4", frames=10)
    with raises_generation_error(ErrorCode.AUDIO_MISSING, rejected=True):
        render(local_request(faceless_clip, silent_video), tmp_path, CONFIG)


def test_video_without_a_face(faceless_clip: Path, tone_wav: Path, tmp_path: Path) -> None:
    with raises_generation_error(ErrorCode.NO_FACE_DETECTED, rejected=True):
        render(local_request(faceless_clip, tone_wav), tmp_path, CONFIG)


def test_local_path_needs_permission(faceless_clip: Path, tone_wav: Path, tmp_path: Path) -> None:
    req = GenerationRequest(video=str(faceless_clip), audios=(AudioInput(str(tone_wav)),))
    with raises_generation_error(ErrorCode.MEDIA_FETCH_FAILED, rejected=False):
        render(req, tmp_path, CONFIG)


# --- inputs over HTTP --------------------------------------------------------------------------------

HTTP_CONFIG = EngineConfig(
    fetch=FetchLimits(allow_private_addresses=True, connect_timeout=5, read_timeout=10)
)


def test_http_inputs_end_to_end(
    face3_clip: Path,
    speech_en: Path,
    served_dir: Path,
    http_base: str,
    analysis_cache: AnalysisCache,
    tmp_path: Path,
) -> None:
    for path in (face3_clip, speech_en):
        shutil.copyfile(path, served_dir / path.name)
    req = GenerationRequest(
        video=f"{http_base}/{face3_clip.name}",
        audios=(AudioInput(f"{http_base}/{speech_en.name}"),),
        output_file_name="from_http",
    )
    result = render(req, tmp_path, HTTP_CONFIG, cache=analysis_cache)
    assert_valid_output(result, tmp_path, "from_http")
    assert abs(result.duration - seconds(face3_clip)) <= 1 / float(result.fps)


def test_http_404_fails_the_fetch(http_base: str, tmp_path: Path) -> None:
    req = GenerationRequest(
        video=f"{http_base}/missing.mp4",
        audios=(AudioInput(f"{http_base}/missing.wav"),),
        output_file_name="missing",
    )
    with raises_generation_error(ErrorCode.MEDIA_FETCH_FAILED, rejected=False):
        render(req, tmp_path, HTTP_CONFIG)
