"""The mouth re-render: warp the lower face to the target mouth shape and fill the opened mouth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from lipsync_api.engine import landmarks as lm
from lipsync_api.engine.arrays import Bools, Floats, Image, Ints
from lipsync_api.engine.closed_lips import paint_closed_lips
from lipsync_api.engine.mouth_interior import draw_interior, rigid_interior, sample_shades
from lipsync_api.engine.mouth_shape import MouthPose, mouth_pose
from lipsync_api.engine.warp import WarpMap, backward_map, remap_plane

MOVE_EPSILON = 0.05  # pixels: landmarks moved less than this are left alone
FULL_BLEND_SHIFT = 0.6  # pixels of displacement at which the warped image fully replaces the source
CLOSED_BELOW, OPEN_ABOVE = 0.02, 0.1  # openings between these fade the painted closed lips out
REAL_TEETH_GAP = 0.1  # a source gap of this share of the mouth width shows its own teeth


def _ring_strip(first_ring: int) -> Ints:
    """Triangles joining the jaw line to the fixed ring just outside it."""
    tris = []
    for k in range(len(lm.JAW_LINE) - 1):
        a, b = lm.JAW_LINE[k], lm.JAW_LINE[k + 1]
        ra, rb = first_ring + k, first_ring + k + 1
        tris += [(a, b, rb), (a, rb, ra)]
    return np.array(tris, dtype=np.int32)


def _mouth_fan(centre: int) -> Ints:
    """Triangles filling the inner-lip hole from its centre point."""
    ring = list(lm.UPPER_INNER) + list(reversed(lm.LOWER_INNER[1:-1]))
    return np.array([(centre, ring[k], ring[(k + 1) % len(ring)]) for k in range(len(ring))], dtype=np.int32)


@dataclass(frozen=True)
class _Job:
    """One frame's re-render: the source landmarks, the pose it gets, and how the mouth is drawn."""

    points: Floats  # tracked landmarks (468, 2)
    pose: MouthPose
    closed: float  # weight of the painted closed lips
    teeth: float  # weight of synthetic teeth (none where the source showed its own)

    @property
    def target(self) -> Floats:
        return self.pose.target[: len(self.points)]


class MouthRenderer:
    """Re-renders the mouth of I420 frames of one size; holds the fixed mesh topology."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        first_ring = lm.LANDMARK_COUNT
        self.centre_index = first_ring + len(lm.JAW_LINE)
        self.face_triangles = lm.mesh_triangles()
        self.fixed_triangles = _ring_strip(first_ring)
        self.fan = _mouth_fan(self.centre_index)

    def render(self, frame: Image, points: Floats, opening: float, spread: float) -> Image:
        """A copy of ``frame`` whose mouth shows ``opening`` (gap/width) and ``spread``."""
        pose = mouth_pose(points, opening, spread)
        top, bottom = lm.INNER_LIP_MID
        source = np.vstack([pose.source, (pose.source[top] + pose.source[bottom]) / 2])
        target = np.vstack([pose.target, (pose.target[top] + pose.target[bottom]) / 2])
        moved = np.linalg.norm(target - source, axis=1) > MOVE_EPSILON
        face = self.face_triangles[moved[self.face_triangles].any(axis=1)]
        triangles = np.concatenate([face, self.fixed_triangles, self.fan])
        roi = self._roi(source, target, triangles)
        if roi is None:
            return frame.copy()
        warp = backward_map(source, target, triangles, roi)
        hole = warp.triangle >= len(triangles) - len(self.fan)
        job = _Job(
            points=points,
            pose=pose,
            closed=1.0 - float(np.clip((opening - CLOSED_BELOW) / (OPEN_ABOVE - CLOSED_BELOW), 0.0, 1.0)),
            teeth=1.0 - float(np.clip(pose.source_gap / (REAL_TEETH_GAP * pose.axes.mouth_width), 0.0, 1.0)),
        )
        synthetic = self._map_interior(warp, hole, job)
        return self._compose(frame, warp, hole, synthetic, job)

    def _roi(self, source: Floats, target: Floats, triangles: Ints) -> tuple[int, int, int, int] | None:
        used = np.zeros(len(source), dtype=bool)
        used[triangles.ravel()] = True
        both = np.vstack([source[used], target[used]])
        x0, y0 = np.floor(both.min(axis=0)).astype(int) - 2
        x1, y1 = np.ceil(both.max(axis=0)).astype(int) + 2
        x0, y0 = max(0, x0) & ~1, max(0, y0) & ~1
        x1, y1 = min(self.width, (x1 + 1) & ~1), min(self.height, (y1 + 1) & ~1)
        return (int(x0), int(y0), int(x1), int(y1)) if x1 - x0 >= 4 and y1 - y0 >= 4 else None

    @staticmethod
    def _map_interior(warp: WarpMap, hole: Bools, job: _Job) -> Floats:
        """Point the opened mouth's pixels at the source's real interior; returns where it must be drawn."""
        x0, y0 = warp.origin
        hy, hx = np.nonzero(hole)
        synthetic = np.zeros(hole.shape, np.float32)
        if hy.size:
            xs, ys = (hx + x0).astype(np.float32), (hy + y0).astype(np.float32)
            sx, sy, real = rigid_interior(xs, ys, job.points, job.target, job.pose.axes)
            warp.map_x[hy, hx], warp.map_y[hy, hx] = sx, sy
            synthetic[hy, hx] = 1.0 - real
        return synthetic

    def _compose(self, frame: Image, warp: WarpMap, hole: Bools, synthetic: Floats, job: _Job) -> Image:
        w, h = self.width, self.height
        out = frame.copy()
        y_plane, chroma = out[:h], out[h:].reshape(2, h // 2, w // 2)
        src_y, src_chroma = frame[:h], frame[h:].reshape(2, h // 2, w // 2)
        planes = [remap_plane(src_y, warp).astype(np.float32)]
        planes += [remap_plane(src_chroma[c], warp, 2).astype(np.float32) for c in (0, 1)]
        if synthetic.any():
            hole = hole | (_fill_hole(planes, warp, synthetic, src_y, job) > 0)
        alpha = _shift_alpha(warp)
        alpha[hole] = 1.0
        if job.closed > 0:
            lips = paint_closed_lips(planes, job.target, job.pose.axes, warp.origin, job.closed)
            np.maximum(alpha, lips, out=alpha)
        x0, y0 = warp.origin
        rows, cols = alpha.shape
        _blend(y_plane[y0 : y0 + rows, x0 : x0 + cols], planes[0], alpha)
        half = alpha[::2, ::2]
        for c in (0, 1):
            region = chroma[c, y0 // 2 : y0 // 2 + half.shape[0], x0 // 2 : x0 // 2 + half.shape[1]]
            _blend(region, planes[1 + c], half)
        return out


def _shift_alpha(warp: WarpMap) -> Floats:
    """Blend weight per ROI pixel: pixels the warp moves are replaced; still ones keep the source."""
    x0, y0 = warp.origin
    rows, cols = warp.map_x.shape
    dx = warp.map_x - np.arange(x0, x0 + cols, dtype=np.float32)[None, :]
    dy = warp.map_y - np.arange(y0, y0 + rows, dtype=np.float32)[:, None]
    return np.minimum(cv2.magnitude(dx, dy) * (1.0 / FULL_BLEND_SHIFT), 1.0)


def _fill_hole(planes: list[Floats], warp: WarpMap, synthetic: Floats, src_y: Image, job: _Job) -> Floats:
    """Paint the synthetic interior where the mouth opened past the source's; returns its coverage."""
    x0, y0 = warp.origin
    coverage = cast(Floats, cv2.blur(synthetic, (3, 3)))  # a one-pixel feather where lips meet the cavity
    hy, hx = np.nonzero(coverage > 0)
    xs, ys = (hx + x0).astype(np.float32), (hy + y0).astype(np.float32)
    shades = sample_shades(src_y, job.points)
    luma, u, v = draw_interior(xs, ys, job.target, job.pose.axes, shades, job.teeth)
    weight = coverage[hy, hx]
    planes[0][hy, hx] += (luma - planes[0][hy, hx]) * weight
    lookup = np.full(synthetic.shape, -1, dtype=np.int64)
    lookup[hy, hx] = np.arange(len(hy))
    picked = lookup[::2, ::2]
    cy, cx = np.nonzero(picked >= 0)
    chosen = picked[cy, cx]
    for plane, values in ((planes[1], u), (planes[2], v)):
        plane[cy, cx] += (values[chosen] - plane[cy, cx]) * weight[chosen]
    return coverage


def _blend(region: Image, warped: Floats, alpha: Floats) -> None:
    """Blend the warped values into a uint8 frame region in place."""
    base = region.astype(np.float32)
    region[...] = np.clip(base + (warped - base) * alpha + 0.5, 0, 255).astype(np.uint8)
