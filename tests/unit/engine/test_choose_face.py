"""Which face is animated when several are visible (engine/faces.py choose_face, smooth_landmarks)."""

from __future__ import annotations

import numpy as np

from lipsync_api.engine.faces import choose_face, smooth_landmarks
from lipsync_api.engine.request import SpeakerHint

SMALL = (10.0, 10.0, 60.0, 60.0)
LARGE = (200.0, 50.0, 400.0, 300.0)
MEDIUM = (500.0, 40.0, 620.0, 180.0)


def test_no_faces_gives_none() -> None:
    assert choose_face([], None, None) is None


def test_largest_face_wins_without_hints() -> None:
    assert choose_face([SMALL, LARGE, MEDIUM], None, None) == LARGE


def test_point_hint_picks_the_face_containing_it() -> None:
    hint = SpeakerHint(frame_number=0, coordinates=(30.0, 30.0))
    assert choose_face([SMALL, LARGE, MEDIUM], hint, None) == SMALL


def test_point_hint_outside_every_face_picks_the_nearest() -> None:
    hint = SpeakerHint(frame_number=0, coordinates=(640.0, 100.0))
    assert choose_face([SMALL, LARGE, MEDIUM], hint, None) == MEDIUM


def test_box_hint_picks_the_best_overlap() -> None:
    assert choose_face([SMALL, LARGE, MEDIUM], None, (505.0, 45.0, 610.0, 170.0)) == MEDIUM


def test_box_hint_overlapping_nothing_animates_nobody() -> None:
    assert choose_face([SMALL, LARGE], None, (900.0, 900.0, 950.0, 950.0)) is None


def test_smoothing_keeps_gaps_and_steadies_jitter() -> None:
    rng = np.random.default_rng(7)
    track = np.full((12, 468, 2), 100.0, dtype=np.float32) + rng.normal(0, 2, (12, 468, 2)).astype(np.float32)
    track[5] = np.nan  # no face in frame 5
    smooth = smooth_landmarks(track)
    assert np.isnan(smooth[5]).all()
    assert np.isfinite(smooth[[0, 4, 6, 11]]).all()
    assert np.std(smooth[6:, 0, 0]) < np.std(track[6:, 0, 0])
