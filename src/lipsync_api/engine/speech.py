"""Speech analysis: from 16 kHz mono audio to per-frame mouth targets (how open, how wide or round)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import numpy as np

from lipsync_api.engine.arrays import Doubles, Floats

ANALYSIS_RATE = 16_000
HOP_SECONDS = 0.01  # features at 100 Hz, finer than any frame rate, so smoothing happens in real time units
WINDOW = 512  # 32 ms at 16 kHz
SILENCE_FLOOR_DB = -55.0  # absolute: below this nothing is speech, however quiet the recording
DYNAMIC_RANGE_DB = 30.0  # the mouth starts opening this far below the speech's loud level
ATTACK_SECONDS = 0.02  # mouths open fast...
RELEASE_SECONDS = 0.045  # ...and close a little slower
ANTICIPATION_SECONDS = 0.03  # lips move slightly ahead of the sound they make (and smoothing lags)
MAX_OPENING = 0.42  # inner-lip gap over mouth width at full opening and temperature 0.5


@dataclass(frozen=True)
class SpeechFeatures:
    """Frame-level acoustic features at ``HOP_SECONDS`` steps."""

    level_db: Floats  # RMS level, dBFS
    low_centroid: Doubles  # spectral centroid within 250-1000 Hz (tracks F1: jaw opening)
    mid_centroid: Doubles  # spectral centroid within 900-3000 Hz (tracks F2: spread vs round)
    hiss: Doubles  # share of energy above 3.5 kHz (fricatives: teeth nearly closed)


@dataclass(frozen=True)
class MouthTargets:
    """Per output frame: opening as inner-lip gap over mouth width, and spread in [-1 round, 1 wide]."""

    opening: Floats
    spread: Floats


def _frames(audio: Floats) -> Floats:
    hop = round(ANALYSIS_RATE * HOP_SECONDS)
    count = max(1, int(np.ceil(len(audio) / hop)))
    padded = np.pad(audio.astype(np.float32), (WINDOW // 2, WINDOW // 2 + count * hop))
    index = np.arange(WINDOW)[None, :] + hop * np.arange(count)[:, None]
    return padded[index]


def _band_centroid(power: Doubles, freqs: Doubles, lo: float, hi: float) -> Doubles:
    band = (freqs >= lo) & (freqs < hi)
    weights = power[:, band]
    total = weights.sum(axis=1)
    centroid = (weights * freqs[band]).sum(axis=1) / np.maximum(total, 1e-12)
    return np.where(total > 1e-12, centroid, (lo + hi) / 2)


def speech_features(audio: Floats) -> SpeechFeatures:
    """Acoustic features of mono 16 kHz float audio, one row per ``HOP_SECONDS``."""
    frames = _frames(audio)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    # numpy's stubs type |complex| ** 2 as an integer array; it is float64
    power = cast(Doubles, np.abs(np.fft.rfft(frames * np.hanning(WINDOW).astype(np.float32), axis=1)) ** 2)
    freqs = np.fft.rfftfreq(WINDOW, 1 / ANALYSIS_RATE)
    total = np.maximum(power[:, freqs >= 80].sum(axis=1), 1e-12)
    return SpeechFeatures(
        level_db=20 * np.log10(np.maximum(rms, 1e-6)),
        low_centroid=_band_centroid(power, freqs, 250, 1000),
        mid_centroid=_band_centroid(power, freqs, 900, 3000),
        hiss=power[:, freqs >= 3500].sum(axis=1) / total,
    )


def loud_level_db(level_db: Floats) -> float:
    """The speech's loud level: a high percentile of the frames that are not silence."""
    voiced = level_db[level_db > SILENCE_FLOOR_DB]
    return float(np.percentile(voiced, 95)) if voiced.size else SILENCE_FLOOR_DB + DYNAMIC_RANGE_DB


def raw_opening(features: SpeechFeatures, loud_db: float) -> Doubles:
    """Unsmoothed opening in [0, 1]: loudness shaped by vowel height, narrowed for fricatives."""
    floor = max(SILENCE_FLOOR_DB, loud_db - DYNAMIC_RANGE_DB)
    loudness = np.clip((features.level_db - floor) / (loud_db - 4.0 - floor), 0.0, 1.0)
    vowel_height = np.clip((features.low_centroid - 350.0) / 400.0, 0.0, 1.0)
    fricative = np.clip((features.hiss - 0.35) / 0.3, 0.0, 1.0)
    return cast(Doubles, loudness * (0.6 + 0.4 * vowel_height) * (1.0 - 0.55 * fricative))


def raw_spread(features: SpeechFeatures) -> Doubles:
    """Unsmoothed spread in [-1, 1]: high second formant spreads the lips, low rounds them."""
    return np.clip((features.mid_centroid - 1600.0) / 600.0, -1.0, 1.0)


def attack_release(signal: Doubles, attack_s: float, release_s: float, step_s: float) -> Doubles:
    """One-pole smoothing that rises with the attack time constant and falls with the release one."""
    rise = 1.0 - np.exp(-step_s / attack_s)
    fall = 1.0 - np.exp(-step_s / release_s)
    out = np.empty_like(signal)
    state = 0.0
    for i, value in enumerate(signal):
        state += (rise if value > state else fall) * (value - state)
        out[i] = state
    return out


def _per_frame(signal: Doubles, fps: Fraction, frame_count: int) -> Floats:
    """Average the 100 Hz signal over each output frame's time span (shifted by the anticipation)."""
    times = np.arange(frame_count + 1) / float(fps) + ANTICIPATION_SECONDS
    edges = np.clip(np.round(times / HOP_SECONDS).astype(int), 0, len(signal))
    low = edges[:-1]
    high = np.clip(np.maximum(edges[1:], low + 1), 0, len(signal))
    sums = np.concatenate([[0.0], np.cumsum(signal)])
    return cast(Floats, ((sums[high] - sums[low]) / np.maximum(high - low, 1)).astype(np.float32))


def mouth_targets(audio: Floats, fps: Fraction, frame_count: int, temperature: float = 0.5) -> MouthTargets:
    """Mouth targets for each output frame of a soundtrack (mono, 16 kHz, starting at frame 0)."""
    features = speech_features(audio)
    gain = 0.5 + float(np.clip(temperature, 0.0, 1.0))
    voiced = features.level_db > SILENCE_FLOOR_DB
    opening = attack_release(
        raw_opening(features, loud_level_db(features.level_db)), ATTACK_SECONDS, RELEASE_SECONDS, HOP_SECONDS
    )
    spread = attack_release(raw_spread(features) * voiced, 0.04, 0.08, HOP_SECONDS)
    return MouthTargets(
        opening=np.clip(_per_frame(opening, fps, frame_count) * MAX_OPENING * gain, 0.0, 0.6),
        spread=np.clip(_per_frame(spread, fps, frame_count) * min(gain, 1.0), -1.0, 1.0),
    )
