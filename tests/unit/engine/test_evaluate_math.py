"""The pure parts of quality measurement (engine/evaluate.py) and the closed-lip band's geometry."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from lipsync_api.engine import landmarks as lm
from lipsync_api.engine.closed_lips import band_edges, band_polygon
from lipsync_api.engine.evaluate import lagged_correlation, lower_face_mask, speech_envelope, ssim_map
from lipsync_api.engine.faces import FaceTracker
from lipsync_api.engine.media import check_video_limits, iter_video_frames, probe
from lipsync_api.engine.request import EngineConfig
from lipsync_api.engine.speech import ANALYSIS_RATE
from tests.support.real_media import require_shared_media

Array = npt.NDArray[Any]
EYES = (33, 133, 159, 145, 263, 362, 386, 374)  # outer and inner corners, upper and lower lids
FLOOR_DB = -120.0

# --- speech_envelope ---------------------------------------------------------------------------------


def sine(seconds: float, amplitude: float, freq: float = 500.0) -> Array:
    t = np.arange(round(seconds * ANALYSIS_RATE)) / ANALYSIS_RATE
    return np.asarray(amplitude * np.sin(2 * np.pi * freq * t), dtype=np.float32)


def test_envelope_of_silence_is_the_floor() -> None:
    level = speech_envelope(np.zeros(ANALYSIS_RATE, np.float32), 25.0, 25)
    np.testing.assert_array_equal(level, np.full(25, FLOOR_DB))


def test_envelope_of_a_sine_is_its_rms_in_dbfs() -> None:
    # 500 Hz fills each 40 ms frame with whole periods, so every frame's RMS is exactly A / sqrt(2).
    level = speech_envelope(sine(1.0, 0.5), 25.0, 25)
    expected = 20 * np.log10(0.5 / np.sqrt(2))  # about -9.03 dBFS
    np.testing.assert_allclose(level, expected, atol=0.01)


def test_envelope_follows_loudness_frame_by_frame() -> None:
    gap = np.zeros(round(0.4 * ANALYSIS_RATE), np.float32)
    audio = np.concatenate([sine(0.4, 0.5), gap, sine(0.2, 0.05)])
    level = speech_envelope(audio, 25.0, 25)
    np.testing.assert_allclose(level[:10], 20 * np.log10(0.5 / np.sqrt(2)), atol=0.01)
    np.testing.assert_array_equal(level[10:20], FLOOR_DB)
    np.testing.assert_allclose(level[20:], 20 * np.log10(0.05 / np.sqrt(2)), atol=0.01)


@pytest.mark.parametrize(("fps", "frames"), [(25.0, 25), (30.0, 7), (29.97, 100), (60.0, 1)])
def test_envelope_has_one_value_per_frame(fps: float, frames: int) -> None:
    level = speech_envelope(sine(1.0, 0.5), fps, frames)
    assert level.shape == (frames,)


def test_frames_beyond_the_audio_get_the_floor() -> None:
    level = speech_envelope(sine(0.4, 0.5), 25.0, 20)  # 10 frames of audio, 20 asked for
    assert level.shape == (20,)
    assert (level[:10] > -10).all()
    np.testing.assert_array_equal(level[10:], FLOOR_DB)


def test_envelope_floor_holds_for_very_quiet_audio() -> None:
    level = speech_envelope(sine(0.4, 1e-9), 25.0, 10)
    np.testing.assert_array_equal(level, FLOOR_DB)


# --- lagged_correlation ------------------------------------------------------------------------------


def delayed(signal: Array, k: int) -> Array:
    """``signal`` shifted later by k frames (earlier when negative); the gap is NaN."""
    out = np.full(signal.shape, np.nan)
    if k >= 0:
        out[k:] = signal[: len(signal) - k]
    else:
        out[:k] = signal[-k:]
    return out


@pytest.fixture(scope="module")
def envelope() -> Array:
    return np.random.default_rng(3).normal(size=120)


@pytest.mark.parametrize("k", [-6, -2, 0, 1, 3, 8])
def test_correlation_peaks_at_the_shift(envelope: Array, k: int) -> None:
    mouth = delayed(envelope, k)
    scores = {lag: lagged_correlation(mouth, envelope, lag) for lag in range(-8, 9)}
    assert max(scores, key=lambda lag: scores[lag]) == k
    assert scores[k] == pytest.approx(1.0)
    assert all(abs(v) < 0.5 for lag, v in scores.items() if lag != k)


def test_positive_lag_means_the_mouth_moves_after_the_sound() -> None:
    sound = np.zeros(60)
    sound[20] = 1.0  # one burst of sound at frame 20
    mouth = np.zeros(60)
    mouth[23] = 1.0  # the mouth opens three frames later
    assert lagged_correlation(mouth, sound, 3) == pytest.approx(1.0)
    assert lagged_correlation(mouth, sound, -3) < 0.1


def test_nans_are_ignored(envelope: Array) -> None:
    mouth = delayed(envelope, 2)
    mouth[[10, 11, 40, 77, 100]] = np.nan  # frames without a face
    assert lagged_correlation(mouth, envelope, 2) == pytest.approx(1.0)
    assert np.isfinite(lagged_correlation(mouth, envelope, 0))


def test_constant_input_gives_zero(envelope: Array) -> None:
    assert lagged_correlation(np.full(120, 0.3), envelope, 0) == 0.0
    assert lagged_correlation(envelope, np.full(120, -120.0), 2) == 0.0


def test_too_few_valid_frames_give_zero(envelope: Array) -> None:
    mouth = np.full(120, np.nan)
    mouth[:2] = (0.1, 0.2)
    assert lagged_correlation(mouth, envelope, 0) == 0.0


def test_anticorrelation_is_negative(envelope: Array) -> None:
    assert lagged_correlation(-envelope, envelope, 0) == pytest.approx(-1.0)


# --- ssim_map ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def texture() -> Array:
    """A smooth-ish 8-bit luma image with structure at several scales."""
    rng = np.random.default_rng(5)
    noise = rng.uniform(0, 255, size=(96, 128)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 2 - 128, 0, 255).astype(np.uint8)


def test_ssim_of_identical_images_is_one_everywhere(texture: Array) -> None:
    score = ssim_map(texture, texture.copy())
    assert score.shape == texture.shape
    np.testing.assert_allclose(score, 1.0, atol=1e-5)


def test_ssim_of_flat_identical_images_is_one() -> None:
    flat = np.full((40, 40), 77, np.uint8)
    np.testing.assert_allclose(ssim_map(flat, flat), 1.0, atol=1e-5)


def test_noise_lowers_ssim(texture: Array) -> None:
    rng = np.random.default_rng(9)
    light = np.clip(texture + rng.normal(0, 4, texture.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(texture + rng.normal(0, 40, texture.shape), 0, 255).astype(np.uint8)
    light_score, heavy_score = float(ssim_map(texture, light).mean()), float(ssim_map(texture, heavy).mean())
    assert 0.8 < light_score < 1.0
    assert heavy_score < light_score
    assert heavy_score < 0.7
    assert (ssim_map(texture, heavy) <= 1.0 + 1e-5).all()


def test_ssim_is_local(texture: Array) -> None:
    damaged = texture.copy()
    damaged[:, 100:] = 255 - damaged[:, 100:]  # only the right edge differs
    score = ssim_map(texture, damaged)
    np.testing.assert_allclose(score[:, :80], 1.0, atol=1e-4)
    assert score[:, 105:].mean() < 0.5


# --- real landmarks: lower_face_mask and the closed-lip band -----------------------------------------


@pytest.fixture(scope="module")
def face() -> tuple[Array, tuple[int, int]]:
    """Landmarks (468, 2) of the frontal speaker in the first frame of vrt_face3, and the frame's shape."""
    path = require_shared_media() / "vrt_face3.mp4"
    info = check_video_limits(probe(path), EngineConfig())
    frames = iter_video_frames(path, info)
    try:
        frame = next(frames)
    finally:
        frames.close()
    with FaceTracker(info.width, info.height) as tracker:
        points = tracker.track(0, frame)
    assert points is not None, "no face found in vrt_face3's first frame"
    return points.astype(np.float64), (info.height, info.width)


def covers(mask: Array, point: Array) -> bool:
    x, y = np.round(point).astype(int)
    return bool(mask[y, x])


def test_face_landmarks_are_plausible(face: tuple[Array, tuple[int, int]]) -> None:
    points, (height, width) = face
    assert points.shape == (lm.LANDMARK_COUNT, 2)
    assert (points >= 0).all() and (points[:, 0] < width).all() and (points[:, 1] < height).all()
    eye_y, mouth_y = points[list(EYES), 1].mean(), points[list(lm.MOUTH_CORNERS), 1].mean()
    assert eye_y < points[lm.NOSE_TIP, 1] < mouth_y < points[lm.CHIN, 1]  # upright


def test_lower_face_mask_covers_the_mouth_and_chin(face: tuple[Array, tuple[int, int]]) -> None:
    points, shape = face
    mask = lower_face_mask(points, shape)
    assert mask.shape == shape and mask.dtype == bool
    mouth = {*lm.UPPER_OUTER, *lm.LOWER_OUTER, *lm.UPPER_INNER, *lm.LOWER_INNER, lm.CHIN, *lm.JAW_LINE[5:-5]}
    missed = [index for index in sorted(mouth) if not covers(mask, points[index])]
    assert not missed, f"landmarks outside the mask: {missed}"


def test_lower_face_mask_leaves_the_eyes_and_the_background(face: tuple[Array, tuple[int, int]]) -> None:
    points, shape = face
    mask = lower_face_mask(points, shape)
    covered = [index for index in EYES if covers(mask, points[index])]
    assert not covered, f"eye landmarks inside the mask: {covered}"
    eyes_top = int(points[list(EYES), 1].min())
    assert not mask[:eyes_top].any()
    assert 0.02 < mask.mean() < 0.5


def test_band_contains_the_inner_lip_meeting_points(face: tuple[Array, tuple[int, int]]) -> None:
    points, _ = face
    polygon = band_polygon(points).astype(np.float32)
    meeting = (points[list(lm.UPPER_INNER)] + points[list(lm.LOWER_INNER)]) / 2
    inside = [cv2.pointPolygonTest(polygon, (float(x), float(y)), False) > 0 for x, y in meeting]
    outside = [j for j in range(1, len(meeting) - 1) if not inside[j]]  # the ends are the corners themselves
    assert not outside, f"meeting points outside the band: {outside}"


def test_band_stays_inside_the_face(face: tuple[Array, tuple[int, int]]) -> None:
    points, _ = face
    hull = cv2.convexHull(points.astype(np.float32))
    polygon = band_polygon(points)
    assert all(cv2.pointPolygonTest(hull, (float(x), float(y)), False) > 0 for x, y in polygon)
    assert polygon[:, 1].min() > points[lm.NOSE_TIP, 1]
    assert polygon[:, 1].max() < points[lm.CHIN, 1]
    # within the lips' outer contour, give or take the tips past the corners
    outer = np.vstack([points[list(lm.UPPER_OUTER)], points[list(lm.LOWER_OUTER)]])
    assert polygon[:, 1].min() >= outer[:, 1].min() - 1.0
    assert polygon[:, 1].max() <= outer[:, 1].max() + 1.0


def test_band_ends_past_the_mouth_corners(face: tuple[Array, tuple[int, int]]) -> None:
    points, _ = face
    upper, lower = band_edges(points)
    assert upper.shape == lower.shape == (len(lm.UPPER_INNER) + 2, 2)
    np.testing.assert_array_equal(upper[[0, -1]], lower[[0, -1]])  # both edges meet at the tips
    left, right = points[lm.MOUTH_CORNERS[0]], points[lm.MOUTH_CORNERS[1]]
    axis = right - left

    def along(p: Array) -> float:
        return float((p - left) @ axis / (axis @ axis))

    assert along(upper[0]) < 0.0  # past the left corner
    assert along(upper[-1]) > 1.0  # past the right corner
    assert along(upper[0]) > -0.2 and along(upper[-1]) < 1.2  # but not far past them
    inner = [along(p) for p in np.vstack([upper[1:-1], lower[1:-1]])]
    assert min(inner) >= along(upper[0]) and max(inner) <= along(upper[-1])


def test_band_upper_edge_lies_above_the_lower_edge(face: tuple[Array, tuple[int, int]]) -> None:
    points, _ = face
    upper, lower = band_edges(points)
    assert (upper[2:-2, 1] < lower[2:-2, 1]).all()
    polygon = band_polygon(points)
    assert len(polygon) == 2 * len(upper)
    assert cv2.contourArea(polygon.astype(np.float32)) > 0
