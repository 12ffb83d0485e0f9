"""Closed lips painted from the lips' own colours, so no tooth or cavity shows between them."""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np

from lipsync_api.engine import landmarks as lm
from lipsync_api.engine.arrays import Doubles, Floats, Indices
from lipsync_api.engine.mouth_shape import FaceAxes

# How far into each lip (share of its thickness) the painted band reaches. The upper lip's inner edge
# is tracked loosely when teeth show, so the band covers nearly all of that thin lip.
BAND_DEPTH = (0.9, 0.8)  # upper, lower
# Lip colour comes from the lower lip's body (large and reliably tracked); the upper lip is drawn as
# the same colour in shadow.
SAMPLE_DEPTHS = (0.65, 0.75, 0.85)
UPPER_LIP_SHADE = 0.82
SEAM_DARKEN = 0.35  # the line where closed lips meet is this much darker at its centre
SEAM_WIDTH = 0.18  # of the band's half height
EDGE_FADE = 0.2  # share of the band, at each edge, over which it melts into the real lips
CORNER_REACH = 0.06  # the band runs this share of the mouth width past each corner, over any dark wedge


def _into_lips(target: Floats, upper_depth: float, lower_depth: float) -> tuple[Floats, Floats]:
    """Points the given share of the way from each inner lip contour to its outer one (upper, lower)."""
    up_in, up_out = target[list(lm.UPPER_INNER)], target[list(lm.UPPER_OUTER)]
    low_in, low_out = target[list(lm.LOWER_INNER)], target[list(lm.LOWER_OUTER)]
    return up_in + upper_depth * (up_out - up_in), low_in + lower_depth * (low_out - low_in)


def band_edges(target: Floats) -> tuple[Floats, Floats]:
    """Upper and lower edges of the band, left to right, each ending at a tip just past the corners."""
    upper, lower = _into_lips(target, *BAND_DEPTH)
    left, right = target[lm.MOUTH_CORNERS[0]], target[lm.MOUTH_CORNERS[1]]
    outward = (right - left) * CORNER_REACH
    tips = (left - outward, right + outward)
    return np.vstack([tips[0], upper, tips[1]]), np.vstack([tips[0], lower, tips[1]])


def band_polygon(target: Floats) -> Floats:
    """The band straddling the meeting line of the lips: into the upper lip, back through the lower."""
    upper, lower = band_edges(target)
    return np.vstack([upper, lower[::-1]])


def _sample(plane: Floats, points: Floats, origin: tuple[int, int]) -> Floats:
    """Bilinear samples of an ROI plane at ROI-relative positions of ``points`` (frame coordinates)."""
    local = (points - np.array(origin, np.float32)).astype(np.float32)
    xs, ys = local[:, :1].copy(), local[:, 1:].copy()
    samples = cv2.remap(plane, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cast(Floats, samples.reshape(-1))


def _lip_colour(plane: Floats, target: Floats, origin: tuple[int, int], factor: int) -> Floats:
    """Per lower-contour point, the median value of the lower lip's body in a (subsampled) ROI plane."""
    local_origin = (origin[0] // factor, origin[1] // factor)
    rings = [_into_lips(target, 0.0, depth)[1] / factor for depth in SAMPLE_DEPTHS]
    return np.asarray(np.median([_sample(plane, ring, local_origin) for ring in rings], axis=0))


class _Band:
    """Pixels of the band in an ROI, with each one's lateral position and place across the band."""

    def __init__(self, target: Floats, axes: FaceAxes, origin: tuple[int, int], shape: tuple[int, ...]):
        self.axes = axes
        polygon = band_polygon(target)
        self.upper, self.lower = band_edges(target)
        mask = np.zeros(shape, np.uint8)
        corners = np.round((polygon - np.array(origin, np.float32)) * 16).astype(np.int32)
        cv2.fillPoly(  # type: ignore[call-overload]  # cv2 stubs: a plain number is a valid Scalar
            mask, [corners], 255, lineType=cv2.LINE_AA, shift=4
        )
        self.ys, self.xs = np.nonzero(mask)
        self.cover = mask[self.ys, self.xs] / 255.0
        pixels = np.stack([self.xs + origin[0], self.ys + origin[1]], axis=1).astype(np.float32)
        self.lateral, self.depth = axes.lateral(pixels), axes.depth(pixels)
        self.top = self.along(self.upper, self.depth_of(self.upper))
        self.bottom = self.along(self.lower, self.depth_of(self.lower))
        meeting = (target[list(lm.UPPER_INNER)] + target[list(lm.LOWER_INNER)]) / 2
        self.meet = self.along(meeting, self.depth_of(meeting))

    def depth_of(self, points: Floats) -> Floats:
        return self.axes.depth(points)

    def along(self, contour: Floats, values: Floats) -> Doubles:
        """Interpolate per-contour-point values at each band pixel's lateral position."""
        xs = self.axes.lateral(contour)
        order = np.argsort(xs)
        return np.interp(self.lateral, xs[order], values[order])


def paint_closed_lips(
    planes: list[Floats], target: Floats, axes: FaceAxes, origin: tuple[int, int], weight: float
) -> Floats:
    """Blend a smooth closed-lip band into the warped (Y, U, V) ROI planes; returns the band's coverage."""
    band = _Band(target, axes, origin, planes[0].shape)
    coverage = np.zeros(planes[0].shape, np.float32)
    if band.xs.size == 0:
        return coverage
    across = np.clip((band.depth - band.top) / np.maximum(band.bottom - band.top, 1e-3), 0.0, 1.0)
    from_seam = (band.depth - band.meet) / np.maximum((band.bottom - band.top) / 2, 1e-3)
    seam = 1.0 - SEAM_DARKEN * np.exp(-((from_seam / SEAM_WIDTH) ** 2))
    alpha = weight * band.cover * np.clip(np.minimum(across, 1 - across) / EDGE_FADE, 0.0, 1.0)
    coverage[band.ys, band.xs] = alpha
    shade = np.where(from_seam < 0, UPPER_LIP_SHADE, 1.0) * seam
    for index, plane in enumerate(planes):
        factor = 1 if index == 0 else 2
        colour = band.along(band.lower[1:-1], _lip_colour(plane, target, origin, factor))
        if index == 0:
            colour = colour * shade
        _blend_into(plane, band.ys, band.xs, colour, alpha, factor)
    return coverage


def _blend_into(
    plane: Floats, ys: Indices, xs: Indices, colour: Doubles, alpha: Doubles, factor: int
) -> None:
    """Blend per-pixel colours into a plane; a subsampled plane takes its values at even positions."""
    keep = (ys % factor == 0) & (xs % factor == 0)
    py, px = ys[keep] // factor, xs[keep] // factor
    inside = (py < plane.shape[0]) & (px < plane.shape[1])
    chosen = np.flatnonzero(keep)[inside]
    py, px = py[inside], px[inside]
    plane[py, px] += (colour[chosen] - plane[py, px]) * alpha[chosen]
