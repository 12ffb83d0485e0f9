"""Piecewise-affine backward warping (engine/warp.py) on small synthetic meshes."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from lipsync_api.engine.warp import WarpMap, affine_per_triangle, backward_map, rasterize, remap_plane

Array = npt.NDArray[Any]

# A 3x3 grid of points over [8, 56] squared, cut into 8 triangles: it covers [8, 56] x [8, 56].
GRID = np.array([[x, y] for y in (8.0, 32.0, 56.0) for x in (8.0, 32.0, 56.0)], dtype=np.float32)
GRID_TRIANGLES = np.array(
    [(r * 3 + c, r * 3 + c + 1, r * 3 + c + 4) for r in range(2) for c in range(2)]
    + [(r * 3 + c, r * 3 + c + 4, r * 3 + c + 3) for r in range(2) for c in range(2)],
    dtype=np.int32,
)
ROI = (0, 0, 64, 64)


def pixel_grid(roi: tuple[int, int, int, int]) -> tuple[Array, Array]:
    x0, y0, x1, y1 = roi
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    return xs, ys


def apply(coeffs: Array, points: Array) -> Array:
    """Source positions of ``points`` under one triangle's (ax, bx, cx, ay, by, cy)."""
    ax, bx, cx, ay, by, cy = coeffs.astype(np.float64)
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    return np.stack([ax * x + bx * y + cx, ay * x + by * y + cy], axis=1)


def strictly_inside(roi_x: Array, roi_y: Array, lo: float, hi: float) -> Array:
    return (roi_x > lo) & (roi_x < hi) & (roi_y > lo) & (roi_y < hi)


def test_affine_per_triangle_maps_target_vertices_onto_source_vertices() -> None:
    rng = np.random.default_rng(7)
    target = rng.uniform(0, 400, size=(30, 2)).astype(np.float32)
    source = (target + rng.normal(0, 15, size=target.shape)).astype(np.float32)
    triangles = np.array([rng.choice(30, size=3, replace=False) for _ in range(40)], dtype=np.int32)
    coeffs = affine_per_triangle(source, target, triangles)
    assert coeffs.shape == (40, 6)
    for k, tri in enumerate(triangles):
        area = abs(np.cross(target[tri[1]] - target[tri[0]], target[tri[2]] - target[tri[0]]))
        if area < 50:  # nearly flat: float32 coefficients lose the digits the check needs
            continue
        np.testing.assert_allclose(apply(coeffs[k], target[tri]), source[tri], atol=0.02)


def test_affine_per_triangle_is_exact_for_a_known_affine_map() -> None:
    matrix, offset = np.array([[1.2, -0.3], [0.4, 0.9]]), np.array([5.0, -7.0])
    source = (GRID @ matrix.T + offset).astype(np.float32)
    coeffs = affine_per_triangle(source, GRID, GRID_TRIANGLES)
    expected = np.array([matrix[0, 0], matrix[0, 1], offset[0], matrix[1, 0], matrix[1, 1], offset[1]])
    for row in coeffs:
        np.testing.assert_allclose(row, expected, atol=1e-4)


def test_identity_mesh_gives_the_identity_map_on_covered_pixels() -> None:
    warp = backward_map(GRID, GRID, GRID_TRIANGLES, ROI)
    xs, ys = pixel_grid(ROI)
    inside = strictly_inside(xs, ys, 8, 56)
    assert np.all(warp.triangle[inside] >= 0)
    np.testing.assert_allclose(warp.map_x, xs, atol=1e-3)
    np.testing.assert_allclose(warp.map_y, ys, atol=1e-3)


@pytest.mark.parametrize("shift", [(3.0, -2.0), (-5.5, 4.25)])
def test_translated_mesh_shifts_every_covered_pixel(shift: tuple[float, float]) -> None:
    # Target = source + shift: the pixel at p in the output samples the source at p - shift.
    target = GRID + np.array(shift, dtype=np.float32)
    warp = backward_map(GRID, target, GRID_TRIANGLES, ROI)
    xs, ys = pixel_grid(ROI)
    covered = warp.triangle >= 0
    inside = strictly_inside(xs - shift[0], ys - shift[1], 8, 56)
    assert np.all(covered[inside])
    np.testing.assert_allclose(warp.map_x[covered], xs[covered] - shift[0], atol=1e-3)
    np.testing.assert_allclose(warp.map_y[covered], ys[covered] - shift[1], atol=1e-3)


def test_uncovered_pixels_are_identity_and_labelled_minus_one() -> None:
    source = GRID.copy()
    source[4] += [6.0, -4.0]  # move the centre: the map is not the identity inside
    warp = backward_map(source, GRID, GRID_TRIANGLES, ROI)
    xs, ys = pixel_grid(ROI)
    outside = (xs < 7) | (xs > 57) | (ys < 7) | (ys > 57)
    assert np.all(warp.triangle[outside] == -1)
    np.testing.assert_array_equal(warp.map_x[outside], xs[outside])
    np.testing.assert_array_equal(warp.map_y[outside], ys[outside])
    assert np.abs(warp.map_x[32, 32] - 38.0) < 1e-3 and np.abs(warp.map_y[32, 32] - 28.0) < 1e-3


def test_roi_offset_is_respected() -> None:
    roi = (16, 24, 48, 40)
    warp = backward_map(GRID, GRID + np.float32(2.0), GRID_TRIANGLES, roi)
    assert warp.origin == (16, 24)
    assert warp.map_x.shape == warp.triangle.shape == (16, 32)
    xs, ys = pixel_grid(roi)
    np.testing.assert_allclose(warp.map_x, xs - 2.0, atol=1e-3)
    np.testing.assert_allclose(warp.map_y, ys - 2.0, atol=1e-3)


def test_rasterize_labels_the_covering_triangle() -> None:
    labels = rasterize(GRID, GRID_TRIANGLES, (0, 0), (64, 64))
    # Pixel (50, 12) lies in the top-right square, above its diagonal: triangle (1, 2, 5) is index 1.
    assert labels[12, 50] == 1
    # Pixel (40, 20) lies in the same square, below its diagonal: triangle (1, 5, 4) is index 5.
    assert labels[20, 40] == 5
    # Pixel (12, 50) lies in the bottom-left square, below its diagonal: triangle (3, 7, 6) is index 6.
    assert labels[50, 12] == 6
    assert labels[2, 2] == -1


def test_degenerate_target_triangles_do_not_crash() -> None:
    points = np.vstack([GRID, [[20.0, 20.0], [20.0, 20.0], [44.0, 44.0]]]).astype(np.float32)
    source = points.copy()
    source[9:] += 3.0
    triangles = np.vstack([GRID_TRIANGLES, [[9, 10, 11], [0, 4, 8], [9, 9, 9]]]).astype(np.int32)
    coeffs = affine_per_triangle(source, points, triangles)
    assert np.all(np.isfinite(coeffs))
    warp = backward_map(source, points, triangles, ROI)
    assert np.all(np.isfinite(warp.map_x)) and np.all(np.isfinite(warp.map_y))
    assert warp.triangle.max() < len(triangles)


def test_degenerate_target_triangle_covers_no_pixels() -> None:
    # Triangle (0, 4, 8) is the grid's diagonal: zero area. Listed last, it must not override the real ones.
    triangles = np.vstack([GRID_TRIANGLES, [[0, 4, 8]]]).astype(np.int32)
    warp = backward_map(GRID, GRID, triangles, ROI)
    xs, ys = pixel_grid(ROI)
    assert not np.any(warp.triangle == len(GRID_TRIANGLES))
    np.testing.assert_allclose(warp.map_x, xs, atol=1e-3)
    np.testing.assert_allclose(warp.map_y, ys, atol=1e-3)


def gradient_plane(height: int, width: int) -> Array:
    """A chroma-sized plane rising 4 levels per column and 2 per row (exact under bilinear sampling)."""
    rows, cols = np.mgrid[0:height, 0:width]
    plane: Array = (20 + 4 * cols + 2 * rows).astype(np.uint8)
    return plane


def luma_sized_warp(shift: tuple[float, float]) -> WarpMap:
    """A luma-resolution map of the grid mesh translated by ``shift`` (luma pixels)."""
    return backward_map(GRID, GRID + np.array(shift, dtype=np.float32), GRID_TRIANGLES, ROI)


def test_remap_plane_full_resolution_translates_the_plane() -> None:
    plane = np.tile(np.arange(64, dtype=np.uint8) * 3, (64, 1))
    warp = luma_sized_warp((4.0, 0.0))
    out = remap_plane(plane, warp)
    assert out.shape == (64, 64)
    covered = warp.triangle >= 0
    xs, _ = pixel_grid(ROI)
    np.testing.assert_allclose(out[covered], 3 * (xs[covered] - 4.0), atol=0.51)


@pytest.mark.parametrize("shift", [(0.0, 0.0), (4.0, 2.0)])
def test_remap_plane_half_resolution_approximates_chroma_positions(shift: tuple[float, float]) -> None:
    plane = gradient_plane(32, 32)
    warp = luma_sized_warp(shift)
    out = remap_plane(plane, warp, factor=2).astype(np.float64)
    assert out.shape == (32, 32)
    rows, cols = np.mgrid[0:32, 0:32]
    # Well inside the covered area the output is the plane moved by shift / 2 chroma pixels.
    inside = strictly_inside(cols * 2.0, rows * 2.0, 14, 50)
    expected = 20 + 4 * (cols - shift[0] / 2) + 2 * (rows - shift[1] / 2)
    # Within half a chroma pixel (2 levels across, 1 down, both at once: 1.5 + rounding).
    assert np.max(np.abs(out[inside] - expected[inside])) <= 2.0


@pytest.mark.parametrize("shift", [(0.0, 0.0), (4.0, 2.0)])
def test_remap_plane_half_resolution_is_exact_for_even_shifts(shift: tuple[float, float]) -> None:
    # A float plane: no rounding, so the only error left is OpenCV's 1/32-pixel coordinate grid.
    plane = gradient_plane(32, 32).astype(np.float32)
    out = remap_plane(plane, luma_sized_warp(shift), factor=2).astype(np.float64)
    rows, cols = np.mgrid[0:32, 0:32]
    inside = strictly_inside(cols * 2.0, rows * 2.0, 14, 50)
    expected = 20 + 4 * (cols - shift[0] / 2) + 2 * (rows - shift[1] / 2)
    assert np.max(np.abs(out[inside] - expected[inside])) <= 0.2
