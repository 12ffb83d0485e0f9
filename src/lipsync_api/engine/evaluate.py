"""Quality measurement of an output: audio-visual sync, closed lips in silence, fidelity outside the mouth."""

from __future__ import annotations

import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import cv2
import numpy as np

from lipsync_api.engine import landmarks as lm
from lipsync_api.engine.arrays import Bools, Doubles, Floats, Image
from lipsync_api.engine.faces import FaceTracker
from lipsync_api.engine.frames import open_frames
from lipsync_api.engine.media import (
    VideoStreamInfo,
    check_audio_limits,
    check_video_limits,
    decode_audio,
    iter_video_frames,
    probe,
)
from lipsync_api.engine.request import EngineConfig, SyncMode
from lipsync_api.engine.speech import ANALYSIS_RATE
from lipsync_api.engine.timeline import VideoTiming, plan_timeline

CLOSED_RATIO = 0.06  # inner-lip gap under 6% of the mouth width counts as closed lips
SILENCE_BELOW_LOUD_DB = 30.0  # a frame this far below the speech's loud level is silent
ENVELOPE_FLOOR_DB = 45.0  # the envelope is clipped this far below the loud level
MAX_LAG = 8
_UNLIMITED = EngineConfig(max_video_seconds=1e9, max_audio_seconds=1e9, max_width=10**6, max_height=10**6)


@dataclass(frozen=True)
class QualityReport:
    """What ``lipsync-api eval`` prints."""

    frames: int
    face_frames: int
    best_lag: int  # frames; positive: the mouth moves after the sound
    correlation_at_best: float
    correlation_at_zero: float
    silent_frames: int
    silent_closed_share: float | None
    ssim_outside_mouth: float | None


def speech_envelope(audio: Floats, fps: float, frame_count: int) -> Doubles:
    """Log RMS level of each frame's span of 16 kHz mono audio (dBFS), clipped below at -120."""
    edges = np.round(np.arange(frame_count + 1) * ANALYSIS_RATE / fps).astype(int)
    level = np.full(frame_count, -120.0)
    for i in range(frame_count):
        chunk = audio[edges[i] : edges[i + 1]]
        if chunk.size:
            level[i] = 20 * np.log10(max(float(np.sqrt(np.mean(chunk**2))), 1e-6))
    return level


def lagged_correlation(mouth: Doubles, envelope: Doubles, lag: int) -> float:
    """Pearson correlation of mouth[t] with envelope[t - lag] over frames where both exist."""
    if lag >= 0:
        a, b = mouth[lag:], envelope[: len(envelope) - lag]
    else:
        a, b = mouth[:lag], envelope[-lag:]
    valid = np.isfinite(a) & np.isfinite(b)
    if valid.sum() < 3 or np.std(a[valid]) < 1e-9 or np.std(b[valid]) < 1e-9:
        return 0.0
    return float(np.corrcoef(a[valid], b[valid])[0, 1])


def track_output(path: Path, refine: bool = True) -> tuple[Floats, VideoStreamInfo]:
    """Landmarks of the face in every frame of a video (NaN where none)."""
    info = check_video_limits(probe(path), _UNLIMITED)
    marks = np.full((info.frame_count, lm.LANDMARK_COUNT, 2), np.nan, dtype=np.float32)
    with FaceTracker(info.width, info.height, refine=refine) as tracker:
        for index, frame in enumerate(iter_video_frames(path, info)):
            points = tracker.track(index, frame)
            if points is not None:
                marks[index] = points
    return marks, info


def openings(marks: Floats) -> Doubles:
    """Mouth-opening ratio per frame (NaN without a face)."""
    return np.array([lm.mouth_opening_ratio(p) if np.isfinite(p[0, 0]) else np.nan for p in marks])


def lower_face_mask(points: Floats, shape: tuple[int, ...]) -> Bools:
    """Mouth and jaw: the hull of the jaw line and the nose's base, grown by a tenth of the face's width."""
    outline = np.vstack([points[list(lm.JAW_LINE)], points[[2, 98, 327]]])
    width = float(np.ptp(points[:, 0]))
    mask = np.zeros(shape, dtype=np.uint8)
    cv2.fillConvexPoly(  # type: ignore[call-overload]  # cv2 stubs: a plain number is a valid Scalar
        mask, cv2.convexHull(np.round(outline).astype(np.int32)), 255
    )
    grow = max(3, int(0.1 * width)) | 1
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (grow, grow))) > 0


def ssim_map(a: Image, b: Image) -> Floats:
    """Per-pixel SSIM of two luma images (Gaussian window, sigma 1.5, as Wang et al.)."""
    fa, fb = a.astype(np.float32), b.astype(np.float32)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: Floats) -> Floats:
        return cast(Floats, cv2.GaussianBlur(x, (11, 11), 1.5))

    mu_a, mu_b = blur(fa), blur(fb)
    var_a, var_b, cov = blur(fa * fa) - mu_a**2, blur(fb * fb) - mu_b**2, blur(fa * fb) - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return cast(Floats, ssim)  # float32 throughout: the Python float constants do not widen it


def outside_mouth_ssim(
    output: Path, source: Path, sync_mode: SyncMode, audio_seconds: float, marks: Floats
) -> float:
    """Mean over frames of SSIM against the source frame the plan says it shows, mouth and jaw excluded."""
    info = check_video_limits(probe(source), _UNLIMITED)
    plan = plan_timeline(VideoTiming(info.frame_count, info.fps), {"main": audio_seconds}, sync_mode)
    out_info = check_video_limits(probe(output), _UNLIMITED)
    scores = []
    with tempfile.TemporaryDirectory(prefix="lipsync-eval-") as tmp:
        order = [step.source_frame for step in plan.frames]
        with closing(open_frames(source, info, order, Path(tmp))) as frames:
            for index, frame in enumerate(iter_video_frames(output, out_info)):
                if index >= plan.frame_count:
                    break
                src = frames.get(plan.frames[index].source_frame)[: info.height]
                score = ssim_map(frame[: out_info.height], src)
                if index < len(marks) and np.isfinite(marks[index, 0, 0]):
                    score = score[~lower_face_mask(marks[index], score.shape)]
                scores.append(float(score.mean()))
    return float(np.mean(scores)) if scores else float("nan")


def evaluate(
    output: Path, audio: Path, source: Path | None = None, sync_mode: SyncMode = SyncMode.CUT_OFF
) -> QualityReport:
    """Measure an output against the speech that should drive it (and its source video, for SSIM)."""
    marks, info = track_output(output)
    fps = float(info.fps)
    speech = decode_audio(audio, ANALYSIS_RATE, 1)[0]
    envelope = speech_envelope(speech, fps, len(marks))
    loud = float(np.percentile(envelope[envelope > -60], 95)) if (envelope > -60).any() else -60.0
    clipped = np.maximum(envelope, loud - ENVELOPE_FLOOR_DB)
    mouth = openings(marks)
    lags = {lag: lagged_correlation(mouth, clipped, lag) for lag in range(-MAX_LAG, MAX_LAG + 1)}
    best = max(lags, key=lambda k: lags[k])
    quiet = envelope < loud - SILENCE_BELOW_LOUD_DB
    silent = quiet & np.roll(quiet, 1) & np.roll(quiet, -1) & np.isfinite(mouth)  # a frame clear of speech
    silent[[0, -1]] = False
    closed = float(np.mean(mouth[silent] < CLOSED_RATIO)) if silent.any() else None
    audio_seconds = check_audio_limits(probe(audio), _UNLIMITED).duration
    ssim = outside_mouth_ssim(output, source, sync_mode, audio_seconds, marks) if source else None
    return QualityReport(
        frames=len(marks),
        face_frames=int(np.isfinite(mouth).sum()),
        best_lag=best,
        correlation_at_best=lags[best],
        correlation_at_zero=lags[0],
        silent_frames=int(silent.sum()),
        silent_closed_share=closed,
        ssim_outside_mouth=ssim,
    )
