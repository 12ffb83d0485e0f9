"""Piecewise-affine backward warping over a triangle mesh (target pixel -> source position)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np

from lipsync_api.engine.arrays import AnyArray, Floats, Ints

SUBPIXEL_BITS = 4


@dataclass(frozen=True)
class WarpMap:
    """For each pixel of an ROI: where to sample the source, and which triangle it fell in (-1: none)."""

    origin: tuple[int, int]  # x0, y0 of the ROI in the frame
    map_x: Floats
    map_y: Floats
    triangle: Ints


def affine_per_triangle(source: Floats, target: Floats, triangles: Ints) -> Floats:
    """(k, 6) coefficients (ax, bx, cx, ay, by, cy): source = (ax*x + bx*y + cx, ay*x + by*y + cy)."""
    t = target[triangles].astype(np.float64)
    s = source[triangles].astype(np.float64)
    (x0, y0), (x1, y1), (x2, y2) = t[:, 0].T, t[:, 1].T, t[:, 2].T
    det = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    det = np.where(np.abs(det) > 1e-9, det, np.inf)  # degenerate in the target: covers no pixels
    # Barycentric weights of (x, y) are linear in x and y; these are their coefficients.
    w1 = np.stack([(y2 - y0), -(x2 - x0), (x2 - x0) * y0 - (y2 - y0) * x0], axis=1) / det[:, None]
    w2 = np.stack([-(y1 - y0), (x1 - x0), (y1 - y0) * x0 - (x1 - x0) * y0], axis=1) / det[:, None]
    w0 = -w1 - w2
    w0[:, 2] += 1.0
    coeffs = [
        w0[:, k, None] * s[:, 0] + w1[:, k, None] * s[:, 1] + w2[:, k, None] * s[:, 2] for k in range(3)
    ]
    ax, ay = coeffs[0].T
    bx, by = coeffs[1].T
    cx, cy = coeffs[2].T
    return cast(Floats, np.stack([ax, bx, cx, ay, by, cy], axis=1).astype(np.float32))


def rasterize(target: Floats, triangles: Ints, origin: tuple[int, int], shape: tuple[int, int]) -> Ints:
    """Label each ROI pixel with the index of the last triangle covering it, -1 where none does."""
    labels = np.zeros(shape, dtype=np.int32)
    scale = 1 << SUBPIXEL_BITS
    corners = np.round((target[triangles] - np.array(origin, np.float32)) * scale).astype(np.int32)
    edges_a, edges_b = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    area2 = edges_a[:, 0].astype(np.int64) * edges_b[:, 1] - edges_a[:, 1].astype(np.int64) * edges_b[:, 0]
    for index in np.flatnonzero(area2 != 0):  # a zero-area triangle would still be drawn as a line
        cv2.fillConvexPoly(  # type: ignore[call-overload]  # cv2 stubs: a plain number is a valid Scalar
            labels, corners[index], int(index) + 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS
        )
    return labels - 1


def backward_map(source: Floats, target: Floats, triangles: Ints, roi: tuple[int, int, int, int]) -> WarpMap:
    """Source positions for every pixel of ``roi`` covered by the target triangles (identity elsewhere)."""
    x0, y0, x1, y1 = roi
    labels = rasterize(target, triangles, (x0, y0), (y1 - y0, x1 - x0))
    # Row -1 (uncovered pixels) is the identity.
    coeffs = np.vstack([affine_per_triangle(source, target, triangles), [[1, 0, 0, 0, 1, 0]]]).astype(
        np.float32
    )
    xs = np.arange(x0, x1, dtype=np.float32)[None, :]
    ys = np.arange(y0, y1, dtype=np.float32)[:, None]
    c = [np.take(coeffs[:, k], labels) for k in range(6)]
    map_x = c[0] * xs + c[1] * ys + c[2]
    map_y = c[3] * xs + c[4] * ys + c[5]
    return WarpMap((x0, y0), map_x, map_y, labels)


def remap_plane(plane: AnyArray, warp: WarpMap, factor: int = 1) -> AnyArray:
    """Sample a (possibly subsampled by ``factor``) plane through the map; returns the warped ROI."""
    if factor == 1:
        return cv2.remap(plane, warp.map_x, warp.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # A chroma sample sits at the centre of its factor x factor luma block: average the map there.
    map_x = (_block_mean(warp.map_x, factor) + 0.5) / factor - 0.5
    map_y = (_block_mean(warp.map_y, factor) + 0.5) / factor - 0.5
    return cv2.remap(plane, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _block_mean(values: Floats, factor: int) -> Floats:
    """Mean of each factor x factor block (area interpolation is exactly that, and fast)."""
    rows, cols = values.shape[0] // factor, values.shape[1] // factor
    block = values[: rows * factor, : cols * factor]
    return cast(Floats, cv2.resize(block, (cols, rows), interpolation=cv2.INTER_AREA))
