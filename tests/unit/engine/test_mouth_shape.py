"""Target mouth geometry (engine/mouth_shape.py) and landmark helpers (engine/landmarks.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from lipsync_api.engine import landmarks as lm
from lipsync_api.engine.mouth_shape import face_axes, gap_profile, mouth_pose

Array = npt.NDArray[Any]

MEDIA = Path(__file__).resolve().parents[3].parent / "shared" / "media"
CLIP = MEDIA / "vrt_face3.mp4"
UPPER_FACE = (33, 263, 1, 10)  # outer eye corners, nose tip, forehead
OPENINGS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
SPREADS = (-1.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def face() -> Array:
    """Real (468, 2) landmarks: mediapipe on the first frame of a frontal clip that shows a face."""
    if not CLIP.exists():
        pytest.skip(f"real test media absent: {CLIP} (see ../shared/media/README.md)")
    from lipsync_api.engine.faces import FaceTracker
    from lipsync_api.engine.media import iter_video_frames, probe

    info = probe(CLIP).video
    assert info is not None
    with FaceTracker(info.width, info.height) as tracker:
        for index, frame in enumerate(iter_video_frames(CLIP, info)):
            points: Array | None = tracker.track(index, frame)
            if points is not None:
                assert points.shape == (lm.LANDMARK_COUNT, 2)
                return points
            if index >= 10:
                break
    pytest.fail("no face found in the first frames of the frontal clip")


def inner_gaps(points: Array, down: Array) -> Array:
    """Gap between each upper/lower inner-lip pair along the face's down axis, corners excluded."""
    upper = points[list(lm.UPPER_INNER[1:-1])]
    lower = points[list(lm.LOWER_INNER[1:-1])]
    return (lower - upper) @ down


def corner_distance(points: Array) -> float:
    return float(np.linalg.norm(points[lm.MOUTH_CORNERS[1]] - points[lm.MOUTH_CORNERS[0]]))


# --- with real landmarks -----------------------------------------------------------------------


@pytest.mark.media
def test_landmarks_look_like_an_upright_face(face: Array) -> None:
    axes = face_axes(face)
    assert axes.right[0] > 0.95  # eyes roughly level
    assert face[10, 1] < face[1, 1] < face[13, 1] < face[14, 1] < face[lm.CHIN, 1]
    assert axes.mouth_width > 40


@pytest.mark.media
def test_closed_target_presses_the_lips_together(face: Array) -> None:
    axes = face_axes(face)
    pose = mouth_pose(face, 0.0, 0.0)
    gaps = inner_gaps(pose.target[: lm.LANDMARK_COUNT], axes.down)
    assert np.all(gaps <= 0.0)
    top, bottom = lm.INNER_LIP_MID
    assert float(np.dot(pose.target[bottom] - pose.target[top], axes.down)) < 0
    assert pose.target_gap == 0.0
    assert pose.source_gap > 0.0  # the chosen frame shows an open mouth


@pytest.mark.media
@pytest.mark.parametrize("opening", [0.1, 0.25, 0.4, 0.5])
def test_target_gap_over_width_matches_the_opening(face: Array, opening: float) -> None:
    pose = mouth_pose(face, opening, 0.0)
    assert lm.mouth_opening_ratio(pose.target[: lm.LANDMARK_COUNT]) == pytest.approx(opening, abs=0.05)
    assert pose.target_gap / face_axes(face).mouth_width == pytest.approx(opening, abs=0.05)


@pytest.mark.media
def test_upper_face_never_moves(face: Array) -> None:
    for opening in OPENINGS:
        for spread in SPREADS:
            pose = mouth_pose(face, opening, spread)
            for index in UPPER_FACE:
                np.testing.assert_array_equal(pose.target[index], face[index])
                np.testing.assert_array_equal(pose.source[index], face[index])


@pytest.mark.media
def test_fixed_ring_never_moves(face: Array) -> None:
    ring = None
    for opening in OPENINGS:
        for spread in SPREADS:
            pose = mouth_pose(face, opening, spread)
            assert pose.source.shape == pose.target.shape == (lm.LANDMARK_COUNT + len(lm.JAW_LINE), 2)
            here = pose.target[lm.LANDMARK_COUNT :]
            np.testing.assert_array_equal(here, pose.source[lm.LANDMARK_COUNT :])
            if ring is None:
                ring = here
            np.testing.assert_array_equal(here, ring)


@pytest.mark.media
def test_ring_lies_outside_the_jaw_line(face: Array) -> None:
    ring = mouth_pose(face, 0.3, 0.0).target[lm.LANDMARK_COUNT :]
    jaw = face[list(lm.JAW_LINE)]
    nose = face[lm.NOSE_TIP]
    assert np.all(np.linalg.norm(ring - nose, axis=1) > np.linalg.norm(jaw - nose, axis=1))


@pytest.mark.media
def test_chin_drops_monotonically_with_opening(face: Array) -> None:
    down = face_axes(face).down
    depth = [float(mouth_pose(face, o, 0.0).target[lm.CHIN] @ down) for o in OPENINGS]
    assert np.all(np.diff(depth) > 0)
    lower_lip = [float(mouth_pose(face, o, 0.0).target[lm.INNER_LIP_MID[1]] @ down) for o in OPENINGS]
    assert np.all(np.diff(lower_lip) > 0)


@pytest.mark.media
@pytest.mark.parametrize("opening", [0.0, 0.2, 0.4])
def test_spread_widens_and_rounding_narrows_the_mouth(face: Array, opening: float) -> None:
    wide = corner_distance(mouth_pose(face, opening, 1.0).target)
    neutral = corner_distance(mouth_pose(face, opening, 0.0).target)
    rounded = corner_distance(mouth_pose(face, opening, -1.0).target)
    assert wide > neutral > rounded
    assert wide - rounded > 0.03 * corner_distance(face)


@pytest.mark.media
def test_mouth_pose_is_deterministic_and_leaves_the_input_alone(face: Array) -> None:
    before = face.copy()
    first = mouth_pose(face, 0.3, 0.5)
    second = mouth_pose(face, 0.3, 0.5)
    np.testing.assert_array_equal(face, before)
    np.testing.assert_array_equal(first.target, second.target)
    np.testing.assert_array_equal(first.source, second.source)


# --- pure landmark helpers ---------------------------------------------------------------------


def test_mesh_has_854_triangles_over_valid_landmarks() -> None:
    triangles = lm.mesh_triangles()
    assert triangles.shape == (854, 3)
    assert triangles.min() >= 0 and triangles.max() < lm.LANDMARK_COUNT
    assert len({tuple(t) for t in triangles.tolist()}) == 854
    assert np.all((triangles[:, 0] != triangles[:, 1]) & (triangles[:, 1] != triangles[:, 2]))


def test_mesh_leaves_the_mouth_a_hole() -> None:
    upper = set(lm.UPPER_INNER[1:-1])  # the corners 78 / 308 belong to both contours
    lower = set(lm.LOWER_INNER[1:-1])
    crossing = [t for t in lm.mesh_triangles().tolist() if set(t) & upper and set(t) & lower]
    assert crossing == []


def test_lip_contours_pair_up() -> None:
    assert len(lm.UPPER_INNER) == len(lm.LOWER_INNER) == len(lm.UPPER_OUTER) == len(lm.LOWER_OUTER)
    assert lm.UPPER_INNER[0] == lm.LOWER_INNER[0] == lm.INNER_CORNERS[0]
    assert lm.UPPER_INNER[-1] == lm.LOWER_INNER[-1] == lm.INNER_CORNERS[1]
    assert (lm.UPPER_OUTER[0], lm.UPPER_OUTER[-1]) == lm.MOUTH_CORNERS


def test_mouth_opening_ratio_on_known_points() -> None:
    points = np.zeros((lm.LANDMARK_COUNT, 2), dtype=np.float32)
    points[lm.MOUTH_CORNERS[0]] = (100.0, 200.0)
    points[lm.MOUTH_CORNERS[1]] = (160.0, 200.0)
    points[lm.INNER_LIP_MID[0]] = (130.0, 195.0)
    points[lm.INNER_LIP_MID[1]] = (130.0, 213.0)
    assert lm.mouth_opening_ratio(points) == pytest.approx(18.0 / 60.0)
    points[lm.INNER_LIP_MID[1]] = points[lm.INNER_LIP_MID[0]]
    assert lm.mouth_opening_ratio(points) == 0.0
    points[lm.MOUTH_CORNERS[1]] = points[lm.MOUTH_CORNERS[0]]
    assert lm.mouth_opening_ratio(points) == 0.0  # no width: no ratio, no division by zero


def test_mouth_opening_ratio_is_rotation_invariant() -> None:
    points = np.zeros((lm.LANDMARK_COUNT, 2), dtype=np.float64)
    points[lm.MOUTH_CORNERS[0]], points[lm.MOUTH_CORNERS[1]] = (-25.0, 0.0), (25.0, 0.0)
    points[lm.INNER_LIP_MID[0]], points[lm.INNER_LIP_MID[1]] = (0.0, -5.0), (0.0, 10.0)
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    assert lm.mouth_opening_ratio(points @ rotation.T + 50) == pytest.approx(15.0 / 50.0)


def test_inner_mouth_polygon_walks_the_upper_lip_then_back_along_the_lower() -> None:
    points = np.arange(lm.LANDMARK_COUNT * 2, dtype=np.float32).reshape(-1, 2)
    polygon = lm.inner_mouth_polygon(points)
    order = list(lm.UPPER_INNER) + list(reversed(lm.LOWER_INNER[1:-1]))
    assert len(polygon) == len(set(order)) == 20
    np.testing.assert_array_equal(polygon, points[order])


def test_gap_profile_is_one_at_the_centre_and_zero_at_the_corners() -> None:
    profile = gap_profile(np.array([-1.2, -1.0, -0.5, 0.0, 0.5, 1.0]))
    assert profile[3] == 1.0
    assert profile[0] == profile[1] == profile[5] == 0.0
    assert profile[2] == pytest.approx(profile[4]) and 0 < profile[2] < 1
