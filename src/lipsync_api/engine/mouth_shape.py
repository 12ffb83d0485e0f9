"""Where each lower-face landmark goes so the mouth shows a target opening and spread (pure numpy)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from lipsync_api.engine import landmarks as lm
from lipsync_api.engine.arrays import AnyArray, Doubles, Floats, Ints

LOWER_LIP_SHARE = (
    0.85  # of a gap change, how much the lower lip (with the jaw) moves; the rest lifts the upper lip
)
JAW_SHARE = 0.8  # the chin follows the lower lip's drop by this much
RING_SCALE = 0.45  # fixed anchors beyond the jaw line, as a share of the jaw's distance from the face centre
CLOSED_OVERLAP = 0.035  # closed lips press together by this share of the mouth width: no dark slit remains
INNER_EDGE_INSET = 0.3  # sample lips this share of their thickness away from the inner edge (dark fringe)


@dataclass(frozen=True)
class FaceAxes:
    """A face-aligned frame: unit ``right`` and ``down`` vectors, the mouth centre and sizes in pixels."""

    right: Floats
    down: Floats
    centre: Floats
    mouth_width: float
    chin_depth: float

    def lateral(self, points: Floats) -> Floats:
        """Signed distance of points from the mouth centre along ``right``, in pixels."""
        return _project(points - self.centre, self.right)

    def depth(self, points: Floats) -> Floats:
        """Signed distance of points below the mouth centre along ``down``, in pixels."""
        return _project(points - self.centre, self.down)


def _project(vectors: Floats, axis: Floats) -> Floats:
    # Element-wise on purpose: BLAS calls on tiny arrays cost more than the arithmetic when other
    # threads (the encoder) keep the cores busy.
    return np.asarray(vectors[..., 0] * axis[0] + vectors[..., 1] * axis[1])


@dataclass(frozen=True)
class MouthPose:
    """Source and target positions of every warped point: mesh landmarks first, then the fixed ring."""

    source: Floats
    target: Floats
    source_gap: float  # inner-lip gap at the centre, pixels
    target_gap: float
    axes: FaceAxes


def face_axes(points: Floats) -> FaceAxes:
    """Axes from the eye line (robust to head roll) and mouth geometry."""
    eyes = points[lm.EYE_OUTER[1]] - points[lm.EYE_OUTER[0]]
    right = eyes / max(math.hypot(*eyes), 1e-6)
    down = np.array([-right[1], right[0]], dtype=np.float32)
    centre = (points[lm.INNER_LIP_MID[0]] + points[lm.INNER_LIP_MID[1]]) / 2
    width = math.hypot(*(points[lm.MOUTH_CORNERS[1]] - points[lm.MOUTH_CORNERS[0]]))
    chin_depth = max(float(_project(points[lm.CHIN] - centre, down)), 0.5 * width)
    return FaceAxes(right.astype(np.float32), down, centre, max(width, 1.0), chin_depth)


@cache
def _lip_indices() -> tuple[Ints, Ints]:
    lips = set(lm.UPPER_INNER + lm.LOWER_INNER + lm.UPPER_OUTER + lm.LOWER_OUTER)
    others = np.array(sorted(set(range(lm.LANDMARK_COUNT)) - lips), dtype=np.int32)
    return np.array(sorted(lips), dtype=np.int32), others


def _smoothstep(edge0: float, edge1: float, x: AnyArray) -> AnyArray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def gap_profile(lateral: Doubles) -> Doubles:
    """Relative height of an open mouth across its width: an ellipse, 1 at the centre, 0 at the corners."""
    return np.sqrt(np.clip(1.0 - lateral**2, 0.0, 1.0)) ** 0.8


def _local(points: Floats, axes: FaceAxes) -> tuple[Floats, Floats]:
    """Lateral position in half mouth widths, and depth below the lips in chin depths."""
    rel = points - axes.centre
    return _project(rel, axes.right) / (axes.mouth_width / 2), _project(rel, axes.down) / axes.chin_depth


_UPPER_INNER, _LOWER_INNER = np.array(lm.UPPER_INNER), np.array(lm.LOWER_INNER)
_UPPER_OUTER, _LOWER_OUTER = np.array(lm.UPPER_OUTER), np.array(lm.LOWER_OUTER)
_CENTRE_PAIR = lm.LOWER_INNER.index(lm.INNER_LIP_MID[1])


def _lip_moves(points: Floats, axes: FaceAxes, opening: float, spread: float, out: Floats) -> float:
    """Write the lip contours' displacements into ``out``; returns the lower lip's drop at the centre."""
    width = axes.mouth_width
    overlap = CLOSED_OVERLAP * width * float(1.0 - _smoothstep(0.0, 0.06, np.array(opening)))
    widen = width * (0.05 * spread - 0.08 * opening)  # wide vowels pull corners out; big openings in
    lateral = axes.lateral((points[_UPPER_INNER] + points[_LOWER_INNER]) / 2) / (width / 2)
    side = (np.clip(lateral, -1.0, 1.0) * widen / 2)[:, None] * axes.right
    source_gap = _project(points[_LOWER_INNER] - points[_UPPER_INNER], axes.down)
    target_gap = opening * width * gap_profile(lateral / 1.15) - overlap
    change = (target_gap - source_gap)[:, None]
    upper = side - axes.down * (1 - LOWER_LIP_SHARE) * change
    lower = side + axes.down * LOWER_LIP_SHARE * change
    # The corners (shared by both contours) only widen or narrow, and sag a little.
    upper[[0, -1]] = lower[[0, -1]] = side[[0, -1]] + axes.down * 0.15 * opening * width
    out[_UPPER_INNER], out[_LOWER_INNER] = upper, lower
    out[_UPPER_OUTER] = upper * 0.7
    out[_LOWER_OUTER] = lower * 0.95
    out[_LOWER_OUTER[[0, -1]]] = lower[[0, -1]]  # the outer corners move with the inner ones
    return float(LOWER_LIP_SHARE * change[_CENTRE_PAIR, 0])


def _jaw_moves(points: Floats, axes: FaceAxes, drop: float) -> Floats:
    """Non-lip landmarks: the jaw region follows the lower lip's drop, fading towards cheeks and nose."""
    _, others = _lip_indices()
    lateral, depth = _local(points[others], axes)
    across = np.clip(1.0 - np.maximum(np.abs(lateral) - 0.9, 0.0) / 1.6, 0.0, 1.0)
    below = _smoothstep(-0.12, 0.3, depth)
    amount = JAW_SHARE * drop * across * below
    return amount[:, None] * axes.down[None, :]


def _ring(points: Floats) -> Floats:
    """Fixed anchors just outside the jaw line, so the warp fades to nothing over the neck and cheeks."""
    jaw = points[list(lm.JAW_LINE)]
    face_centre: Floats = points[lm.NOSE_TIP]
    return jaw + (jaw - face_centre) * RING_SCALE


def _inset_inner_lips(points: Floats) -> Floats:
    """Source points with the inner lip contour moved slightly into the lips.

    The tracked inner edge sits on the boundary between lip and mouth cavity; sampling exactly there
    would carry a dark fringe onto the re-rendered lips.
    """
    inset = points.copy()
    for inner, outer in ((lm.UPPER_INNER, lm.UPPER_OUTER), (lm.LOWER_INNER, lm.LOWER_OUTER)):
        middle_in, middle_out = list(inner[1:-1]), list(outer[1:-1])
        inset[middle_in] += INNER_EDGE_INSET * (points[middle_out] - points[middle_in])
    return inset


def mouth_pose(points: Floats, opening: float, spread: float) -> MouthPose:
    """Source and target geometry for one frame."""
    axes = face_axes(points)
    displacement = np.zeros_like(points)
    drop = _lip_moves(points, axes, opening, spread, displacement)
    _, others = _lip_indices()
    displacement[others] = _jaw_moves(points, axes, drop)
    ring = _ring(points)
    source = np.concatenate([_inset_inner_lips(points), ring]).astype(np.float32)
    target = np.concatenate([points + displacement, ring]).astype(np.float32)
    top, bottom = lm.INNER_LIP_MID
    return MouthPose(
        source=source,
        target=target,
        source_gap=max(float(_project(points[bottom] - points[top], axes.down)), 0.0),
        target_gap=max(float(_project(target[bottom] - target[top], axes.down)), 0.0),
        axes=axes,
    )
