"""Closed lips painted from the lips' own colours, so no tooth or cavity shows between them."""

from __future__ import annotations

import cv2
import numpy as np

from lipsync_api.engine import landmarks as lm
from lipsync_api.engine.mouth_shape import FaceAxes

BAND_DEPTH = 0.55  # how far into each lip (share of its thickness) the painted band reaches
SAMPLE_DEPTHS = (
    0.7,
    0.8,
    0.9,
)  # lip colour is taken from the lips' outer body: tracking of the inner edge is loose
SEAM_DARKEN = 0.35  # the line where closed lips meet is this much darker at its centre
SEAM_WIDTH = 0.18  # of the band's half height


def _into_lips(target: np.ndarray, depth: float) -> tuple[np.ndarray, np.ndarray]:
    """Points ``depth`` of the way from each inner lip contour to its outer one (upper, lower)."""
    upper = target[list(lm.UPPER_INNER)] + depth * (
        target[list(lm.UPPER_OUTER)] - target[list(lm.UPPER_INNER)]
    )
    lower = target[list(lm.LOWER_INNER)] + depth * (
        target[list(lm.LOWER_OUTER)] - target[list(lm.LOWER_INNER)]
    )
    return upper, lower


def band_polygon(target: np.ndarray) -> np.ndarray:
    """The band straddling the meeting line of the lips: into the upper lip, back through the lower."""
    upper, lower = _into_lips(target, BAND_DEPTH)
    return np.vstack([upper, lower[::-1]])


def _lip_colours(
    plane: np.ndarray, target: np.ndarray, origin: tuple[int, int], factor: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per contour point, the median value of each lip's body in a (possibly subsampled) ROI plane."""
    local_origin = (origin[0] // factor, origin[1] // factor)
    samples = [
        [_edge_values(plane, ring / factor, local_origin) for ring in _into_lips(target, depth)]
        for depth in SAMPLE_DEPTHS
    ]
    upper = np.median(np.stack([s[0] for s in samples]), axis=0)
    lower = np.median(np.stack([s[1] for s in samples]), axis=0)
    return upper, lower


def _edge_values(plane: np.ndarray, points: np.ndarray, origin: tuple[int, int]) -> np.ndarray:
    """Bilinear samples of an ROI plane at frame positions."""
    local = (points - np.array(origin, np.float32)).astype(np.float32)
    sampled = cv2.remap(
        plane,
        local[:, :1].reshape(-1, 1),
        local[:, 1:].reshape(-1, 1),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return sampled.reshape(-1)


def paint_closed_lips(
    planes: list[np.ndarray], target: np.ndarray, axes: FaceAxes, origin: tuple[int, int], weight: float
) -> np.ndarray:
    """Blend a smooth closed-lip band into the warped (Y, U, V) ROI planes; returns the band's coverage."""
    polygon = band_polygon(target)
    half = len(polygon) // 2
    upper, lower = polygon[:half], polygon[half:][::-1]
    mask = np.zeros(planes[0].shape, np.uint8)
    scale = 16
    corners = np.round((polygon - np.array(origin, np.float32)) * scale).astype(np.int32)
    cv2.fillPoly(mask, [corners], 255, lineType=cv2.LINE_AA, shift=4)
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return mask.astype(np.float32)
    pos = np.stack([xs + origin[0], ys + origin[1]], axis=1).astype(np.float32) - axes.centre
    lateral, depth = pos @ axes.right, pos @ axes.down

    def along(contour: np.ndarray, values: np.ndarray) -> np.ndarray:
        rel = contour - axes.centre
        order = np.argsort(rel @ axes.right)
        return np.interp(lateral, (rel @ axes.right)[order], values[order])

    top = along(upper, (upper - axes.centre) @ axes.down)
    bottom = along(lower, (lower - axes.centre) @ axes.down)
    v = np.clip((depth - top) / np.maximum(bottom - top, 1e-3), 0.0, 1.0)  # 0 upper edge, 1 lower edge
    seam = 1.0 - SEAM_DARKEN * np.exp(-(((v - 0.5) / SEAM_WIDTH) ** 2))
    edge_fade = np.clip(np.minimum(v, 1 - v) / 0.2, 0.0, 1.0)  # melt into the real lips at the band's edges
    alpha = weight * edge_fade * (mask[ys, xs] / 255.0)
    coverage = np.zeros(planes[0].shape, np.float32)
    coverage[ys, xs] = alpha
    for index, plane in enumerate(planes):
        factor = 1 if index == 0 else 2
        upper_values, lower_values = _lip_colours(plane, target, origin, factor)
        top_c, bottom_c = along(upper, upper_values), along(lower, lower_values)
        colour = top_c + (bottom_c - top_c) * v
        if index == 0:
            colour = colour * seam
        if factor == 1:
            plane[ys, xs] += (colour - plane[ys, xs]) * alpha
        else:
            keep = (ys % 2 == 0) & (xs % 2 == 0)
            cy, cx = ys[keep] // 2, xs[keep] // 2
            inside = (cy < plane.shape[0]) & (cx < plane.shape[1])
            cy, cx = cy[inside], cx[inside]
            sel = np.flatnonzero(keep)[inside]
            plane[cy, cx] += (colour[sel] - plane[cy, cx]) * alpha[sel]
    return coverage
