"""The new mouth fades in and out where it starts or stops (engine/output.py mouth_weights)."""

from __future__ import annotations

import numpy as np
import pytest

from lipsync_api.engine.output import mouth_weights


def test_everything_animated_is_full_strength() -> None:
    assert mouth_weights([True] * 6).tolist() == [1.0] * 6


def test_nothing_animated_is_zero() -> None:
    assert mouth_weights([False] * 4).tolist() == [0.0] * 4


def test_empty_plan() -> None:
    assert mouth_weights([]).shape == (0,)


def test_fades_in_and_out_around_a_segment() -> None:
    weights = mouth_weights([False] * 2 + [True] * 9 + [False] * 2, fade=3)
    assert weights.tolist() == pytest.approx([0, 0, 0.25, 0.5, 0.75, 1, 1, 1, 0.75, 0.5, 0.25, 0, 0])


def test_a_single_frame_without_a_face_dips_smoothly() -> None:
    weights = mouth_weights([True] * 5 + [False] + [True] * 5, fade=2)
    assert weights[5] == 0.0
    assert weights[4] == weights[6] == pytest.approx(1 / 3)
    assert weights[0] == weights[10] == 1.0


def test_short_segment_never_reaches_full_strength_but_stays_symmetric() -> None:
    weights = mouth_weights([False] + [True] * 3 + [False], fade=3)
    assert np.allclose(weights, [0, 0.25, 0.5, 0.25, 0])
