"""Speech analysis to per-frame mouth targets (engine/speech.py), on synthetic signals."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from lipsync_api.engine.speech import (
    ANALYSIS_RATE,
    ATTACK_SECONDS,
    DYNAMIC_RANGE_DB,
    HOP_SECONDS,
    RELEASE_SECONDS,
    SILENCE_FLOOR_DB,
    SpeechFeatures,
    attack_release,
    loud_level_db,
    mouth_targets,
    raw_opening,
    raw_spread,
    speech_features,
)

Array = npt.NDArray[Any]

FPS = Fraction(25)
VOWEL = (700.0, 1200.0)  # an open, back vowel: F1 700 Hz, F2 1200 Hz


def tone(freqs: tuple[float, ...], seconds: float, amplitude: float = 0.3) -> Array:
    """A sum of sines scaled so its peak is ``amplitude``."""
    t = np.arange(round(ANALYSIS_RATE * seconds)) / ANALYSIS_RATE
    wave: Array = np.sum([np.sin(2 * np.pi * f * t + k) for k, f in enumerate(freqs)], axis=0)
    scaled: Array = (amplitude * wave / np.max(np.abs(wave))).astype(np.float32)
    return scaled


def silence(seconds: float) -> Array:
    return np.zeros(round(ANALYSIS_RATE * seconds), dtype=np.float32)


def rms(signal: Array) -> float:
    return float(np.sqrt(np.mean(np.asarray(signal, dtype=np.float64) ** 2)))


def white_noise(seconds: float, seed: int = 0) -> Array:
    noise: Array = np.random.default_rng(seed).standard_normal(round(ANALYSIS_RATE * seconds))
    return noise


def frame_count(audio: Array, fps: Fraction = FPS) -> int:
    return round(Fraction(len(audio), ANALYSIS_RATE) * fps)


def frames_of(seconds: float, fps: Fraction = FPS) -> int:
    """Index of the output frame starting at ``seconds`` (times here are whole frames)."""
    return round(seconds * fps)


def plateau(values: Array, start_s: float, end_s: float) -> float:
    """Mean over a segment's frames, skipping the attack at its start and the frame at its end."""
    return float(np.mean(values[frames_of(start_s) + 3 : frames_of(end_s) - 1]))


# --- silence and noise -------------------------------------------------------------------------


def test_digital_silence_keeps_the_mouth_exactly_closed() -> None:
    audio = silence(2.0)
    targets = mouth_targets(audio, FPS, 50)
    assert targets.opening.shape == (50,)
    assert np.all(targets.opening == 0.0)
    assert np.all(targets.spread == 0.0)


def test_noise_at_minus_70_dbfs_keeps_the_mouth_closed() -> None:
    noise = white_noise(2.0)
    noise = (noise * 10 ** (-70 / 20) / rms(noise)).astype(np.float32)
    assert 20 * np.log10(rms(noise)) == pytest.approx(-70.0, abs=0.01)
    targets = mouth_targets(noise, FPS, 50)
    assert np.all(targets.opening == 0.0)


# --- opening -----------------------------------------------------------------------------------


def test_steady_vowel_opens_clearly_after_the_attack() -> None:
    audio = tone(VOWEL, 1.0)
    opening = mouth_targets(audio, FPS, 25).opening
    assert np.all(opening[2:] > 0.15)
    assert np.all(opening <= 0.6)


def test_bursts_open_quickly_and_close_after_they_end() -> None:
    # Bursts span [0.4, 0.8) and [1.6, 2.0) s: frames 10-19 and 40-49 at 25 fps.
    audio = np.concatenate([silence(0.4), tone(VOWEL, 0.4), silence(0.8), tone(VOWEL, 0.4), silence(0.4)])
    opening = mouth_targets(audio, FPS, frame_count(audio)).opening
    assert opening.shape == (60,)
    for start_s, end_s in ((0.4, 0.8), (1.6, 2.0)):
        start, end = frames_of(start_s), frames_of(end_s)
        assert np.all(opening[start - 6 : start - 1] < 0.02), "closed before the burst"
        assert opening[start + 2] > 0.3, "open within two frames of the burst start"
        assert np.all(opening[start + 2 : end] > 0.3)
        # The release time constant is 70 ms: about an eighth of the peak is left four frames after the end,
        # and under 0.02 six frames after it.
        assert opening[end + 4] < 0.05
        assert np.all(opening[end + 6 : end + 9] < 0.02)


def test_louder_speech_opens_more() -> None:
    # Same vowel at three levels 10 dB apart, separated by silence: 0.1, 0.3, 0.03 peak.
    amplitudes = (0.1, 0.3, 0.03)
    parts = []
    for amplitude in amplitudes:
        parts += [silence(0.4), tone(VOWEL, 0.6, amplitude)]
    audio = np.concatenate([*parts, silence(0.4)])
    opening = mouth_targets(audio, FPS, frame_count(audio)).opening
    levels = {a: plateau(opening, 0.4 + 1.0 * k, 1.0 + 1.0 * k) for k, a in enumerate(amplitudes)}
    assert levels[0.3] > levels[0.1] + 0.03
    assert levels[0.1] > levels[0.03] + 0.03
    assert levels[0.03] > 0.0


def test_high_first_formant_opens_more_than_low() -> None:
    low, high = tone((300.0,), 0.6), tone((750.0,), 0.6)
    audio = np.concatenate([silence(0.4), low, silence(0.4), high, silence(0.4)])
    opening = mouth_targets(audio, FPS, frame_count(audio)).opening
    low_f1, high_f1 = plateau(opening, 0.4, 1.0), plateau(opening, 1.4, 2.0)
    assert high_f1 > low_f1 * 1.3


def test_fricative_hiss_opens_less_than_a_vowel_of_equal_rms() -> None:
    vowel = tone(VOWEL, 0.6)
    noise = white_noise(0.6)
    spectrum = np.fft.rfft(noise)
    spectrum[np.fft.rfftfreq(len(noise), 1 / ANALYSIS_RATE) < 4000] = 0  # high-pass above 4 kHz
    hiss = np.fft.irfft(spectrum, len(noise))
    hiss = (hiss * rms(vowel) / rms(hiss)).astype(np.float32)
    assert rms(hiss) == pytest.approx(rms(vowel), rel=1e-3)
    audio = np.concatenate([silence(0.4), vowel, silence(0.4), hiss, silence(0.4)])
    opening = mouth_targets(audio, FPS, frame_count(audio)).opening
    vowel_open, hiss_open = plateau(opening, 0.4, 1.0), plateau(opening, 1.4, 2.0)
    assert hiss_open < 0.7 * vowel_open


def test_higher_temperature_opens_wider() -> None:
    audio = np.concatenate([silence(0.2), tone(VOWEL, 0.6, 0.1), tone(VOWEL, 0.6, 0.3), silence(0.2)])
    calm = mouth_targets(audio, FPS, frame_count(audio), temperature=0.0).opening
    lively = mouth_targets(audio, FPS, frame_count(audio), temperature=1.0).opening
    moving = calm > 0.01
    assert moving.sum() > 20
    assert np.all(lively[moving] > calm[moving])
    assert lively.mean() > 1.5 * calm.mean()


# --- spread ------------------------------------------------------------------------------------


def test_high_second_formant_spreads_and_low_rounds() -> None:
    high, low = tone((500.0, 2300.0), 0.8), tone((500.0, 1000.0), 0.8)
    audio = np.concatenate([silence(0.2), high, silence(0.4), low])
    spread = mouth_targets(audio, FPS, frame_count(audio)).spread
    wide = spread[frames_of(0.2) + 5 : frames_of(1.0)]
    rounded = spread[frames_of(1.4) + 5 : frames_of(2.2)]
    assert np.all(wide > 0.3)
    assert np.all(rounded < -0.3)
    assert np.all(np.abs(spread) <= 1.0)


def test_raw_spread_follows_the_mid_band_centroid() -> None:
    centroids = np.array([900.0, 1000.0, 1600.0, 2200.0, 2900.0])
    features = SpeechFeatures(
        level_db=np.zeros(5), low_centroid=np.full(5, 600.0), mid_centroid=centroids, hiss=np.zeros(5)
    )
    assert raw_spread(features) == pytest.approx([-1.0, -1.0, 0.0, 1.0, 1.0])


# --- features and the raw mapping --------------------------------------------------------------


def test_features_have_one_row_per_hop_and_measure_level() -> None:
    audio = tone((1000.0,), 1.0, amplitude=0.5)
    features = speech_features(audio)
    hops = round(1.0 / HOP_SECONDS)
    for array in (features.level_db, features.low_centroid, features.mid_centroid, features.hiss):
        assert array.shape == (hops,)
    # A sine of peak 0.5 has RMS 0.5 / sqrt(2): about -9 dBFS away from the edges.
    assert features.level_db[10:-10] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.1)
    assert features.mid_centroid[10:-10] == pytest.approx(1000.0, abs=25.0)


def test_loud_level_ignores_silence_and_has_a_default() -> None:
    levels = np.concatenate([np.full(80, -120.0), np.linspace(-40.0, -10.0, 20)])
    assert loud_level_db(levels) == pytest.approx(np.percentile(np.linspace(-40.0, -10.0, 20), 95))
    assert loud_level_db(np.full(10, -120.0)) == SILENCE_FLOOR_DB + DYNAMIC_RANGE_DB


def test_raw_opening_is_zero_below_the_floor_and_grows_with_level() -> None:
    levels = np.array([-80.0, -50.0, -35.0, -25.0, -15.0])
    n = len(levels)
    features = SpeechFeatures(levels, np.full(n, 750.0), np.full(n, 1500.0), np.zeros(n))
    opening = raw_opening(features, loud_db=-15.0)
    assert opening[0] == 0.0 and opening[1] == 0.0  # below the floor (loud level - 30 dB)
    assert np.all(np.diff(opening[1:]) > 0)
    assert opening[-1] == pytest.approx(1.0)


# --- attack / release --------------------------------------------------------------------------


def test_attack_release_follows_the_analytic_exponentials_on_a_step() -> None:
    step = HOP_SECONDS
    signal = np.concatenate([np.zeros(5), np.ones(40), np.zeros(60)])
    out = attack_release(signal, ATTACK_SECONDS, RELEASE_SECONDS, step)
    assert np.all(out[:5] == 0.0)
    rise_n = np.arange(1, 41)
    assert out[5:45] == pytest.approx(1.0 - np.exp(-rise_n * step / ATTACK_SECONDS), abs=1e-9)
    peak = out[44]
    fall_n = np.arange(1, 61)
    assert out[45:] == pytest.approx(peak * np.exp(-fall_n * step / RELEASE_SECONDS), abs=1e-9)
    # The attack is faster than the release: one time constant in, each has covered 1 - 1/e.
    assert out[5 + round(ATTACK_SECONDS / step) - 1] == pytest.approx(1 - np.exp(-1.0), abs=1e-9)
    assert out[44 + 5] == pytest.approx(peak * np.exp(-5 * step / RELEASE_SECONDS), abs=1e-9)


def test_attack_release_uses_release_for_any_fall() -> None:
    signal = np.array([1.0, 1.0, 0.5, 0.5, 0.5])
    out = attack_release(signal, 0.02, 0.05, 0.01)
    rise = 1 - np.exp(-0.5)
    fall = 1 - np.exp(-0.2)
    expected = [rise]
    expected.append(expected[-1] + rise * (1.0 - expected[-1]))
    for _ in range(3):
        state = expected[-1]
        expected.append(state + (fall if state > 0.5 else rise) * (0.5 - state))
    assert out == pytest.approx(expected, abs=1e-12)


# --- frame counts and determinism --------------------------------------------------------------


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(60)])
def test_output_has_exactly_frame_count_values(fps: Fraction) -> None:
    audio = np.concatenate([silence(0.3), tone(VOWEL, 1.0), silence(0.7)])
    count = frame_count(audio, fps)
    targets = mouth_targets(audio, fps, count)
    assert targets.opening.shape == (count,) and targets.spread.shape == (count,)
    assert np.all(np.isfinite(targets.opening)) and np.all(np.isfinite(targets.spread))
    middle = round(0.8 * fps)
    assert targets.opening[middle] > 0.15
    assert targets.opening[0] == 0.0


@pytest.mark.parametrize("fps", [Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(60)])
def test_audio_shorter_than_the_frames_pads_with_closed_mouth(fps: Fraction) -> None:
    audio = tone(VOWEL, 0.5)
    count = round(2 * fps)
    targets = mouth_targets(audio, fps, count)
    assert targets.opening.shape == (count,)
    after = np.arange(count) / float(fps) >= 0.5 + HOP_SECONDS
    assert after.sum() > 10
    assert np.all(targets.opening[after] == 0.0)
    assert np.all(targets.spread[after] == 0.0)
    assert targets.opening[round(0.25 * fps)] > 0.15


def test_mouth_targets_are_deterministic() -> None:
    audio = np.concatenate([tone(VOWEL, 0.5), white_noise(0.5, seed=3).astype(np.float32) * 0.05])
    first = mouth_targets(audio, FPS, frame_count(audio))
    second = mouth_targets(audio.copy(), FPS, frame_count(audio))
    np.testing.assert_array_equal(first.opening, second.opening)
    np.testing.assert_array_equal(first.spread, second.spread)
