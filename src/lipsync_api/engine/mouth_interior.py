"""A plausible inside of an opened mouth (dark cavity, a hint of teeth), drawn in YUV."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lipsync_api.engine import landmarks as lm
from lipsync_api.engine.arrays import Doubles, Floats, Image
from lipsync_api.engine.mouth_shape import FaceAxes

CAVITY_UV = (123.0, 139.0)  # dark red-brown, barely saturated
TONGUE_UV = (118.0, 150.0)  # the tongue: redder than the cavity
TONGUE_TOP = 0.6  # the tongue shows in the lower part of a wide opening, from this share of its height
TEETH_UV = (123.0, 133.0)  # warm off-white
UPPER_TEETH = 0.10  # visible upper teeth height, as a share of the mouth width
LOWER_TEETH = 0.05


@dataclass(frozen=True)
class Shades:
    """Luma of the lips and of the skin near the mouth, sampled from the source frame."""

    lips: float
    skin: float


def sample_shades(y_plane: Image, points: Floats) -> Shades:
    """Median luma at the lower lip and at the cheeks beside the mouth."""

    def at(indices: tuple[int, ...]) -> float:
        xy = np.round(points[list(indices)]).astype(int)
        xy[:, 0] = np.clip(xy[:, 0], 0, y_plane.shape[1] - 1)
        xy[:, 1] = np.clip(xy[:, 1], 0, y_plane.shape[0] - 1)
        return float(np.median(y_plane[xy[:, 1], xy[:, 0]]))

    return Shades(lips=at(lm.LOWER_OUTER[2:-2]), skin=at((50, 280, 205, 425, 187, 411)))


def _contour_depth(target: Floats, contour: tuple[int, ...], axes: FaceAxes, lateral: Floats) -> Doubles:
    """Depth (along ``down``) of a lip contour at the given lateral positions, by interpolation."""
    points = target[list(contour)]
    xs, ds = axes.lateral(points), axes.depth(points)
    order = np.argsort(xs)
    return np.interp(lateral, xs[order], ds[order])


def _smooth_band(distance: Doubles, width: Doubles | float, softness: float) -> Doubles:
    """1 inside a band of ``width`` pixels from its edge, fading over ``softness`` pixels."""
    return np.clip((width - distance) / softness + 0.5, 0.0, 1.0)


def draw_interior(
    xs: Floats,
    ys: Floats,
    target: Floats,
    axes: FaceAxes,
    shades: Shades,
    teeth_share: float = 1.0,
) -> tuple[Doubles, Doubles, Doubles]:
    """Y, U, V values for mouth-interior pixels at frame positions (xs, ys); ``teeth_share`` 0 draws none."""
    pixels = np.stack([xs, ys], axis=1)
    lateral, depth = axes.lateral(pixels), axes.depth(pixels)
    top = _contour_depth(target, lm.UPPER_INNER, axes, lateral)
    bottom = _contour_depth(target, lm.LOWER_INNER, axes, lateral)
    gap = np.maximum(bottom - top, 1e-3)
    from_top, from_bottom = depth - top, bottom - depth
    soft = max(1.0, axes.mouth_width * 0.02)
    upper = _smooth_band(from_top, np.minimum(UPPER_TEETH * axes.mouth_width, 0.55 * gap), soft)
    lower = _smooth_band(from_bottom, np.minimum(LOWER_TEETH * axes.mouth_width, 0.22 * gap), soft)
    lower *= 0.7 * np.clip((gap - 0.2 * axes.mouth_width) / (0.1 * axes.mouth_width), 0.0, 1.0)
    across = np.clip(lateral / (axes.mouth_width / 2), -1.0, 1.0)
    towards_corner = np.clip((0.85 - np.abs(across)) / 0.35, 0.0, 1.0)  # teeth recede behind the cheeks
    teeth = np.maximum(upper, lower) * towards_corner * teeth_share
    lip_shadow = 0.82 + 0.18 * np.clip(from_top / (0.05 * axes.mouth_width + 1e-3), 0.0, 1.0)
    teeth_luma = np.clip(shades.skin * 1.12, 150.0, 225.0) * (1.0 - 0.25 * across**2) * lip_shadow
    cavity_luma = np.clip(shades.lips * 0.28, 18.0, 55.0) * (0.75 + 0.25 * (1 - across**2))
    tongue = np.clip((from_top / gap - TONGUE_TOP) / 0.25, 0.0, 1.0) * np.clip(1 - across**2, 0.0, 1.0)
    tongue *= np.clip((gap - 0.15 * axes.mouth_width) / (0.1 * axes.mouth_width), 0.0, 1.0)
    base_luma = cavity_luma + (shades.lips * 0.55 - cavity_luma) * tongue
    base_u = CAVITY_UV[0] + (TONGUE_UV[0] - CAVITY_UV[0]) * tongue
    base_v = CAVITY_UV[1] + (TONGUE_UV[1] - CAVITY_UV[1]) * tongue
    luma = base_luma + (teeth_luma - base_luma) * teeth
    u = base_u + (TEETH_UV[0] - base_u) * teeth
    v = base_v + (TEETH_UV[1] - base_v) * teeth
    return luma, u, v


def rigid_interior(
    xs: Floats, ys: Floats, source: Floats, target: Floats, axes: FaceAxes
) -> tuple[Floats, Floats, Floats]:
    """Where each opened-mouth pixel finds the source's own mouth interior, and how much of it is real.

    Teeth are rigid: what shows under the upper lip moves with the upper lip, what shows above the lower
    lip moves with the lower lip. Pixels farther from both lips than the source's own opening allowed
    are newly revealed (real share 0) and get the synthetic cavity instead.
    """
    pixels = np.stack([xs, ys], axis=1)
    lateral, depth = axes.lateral(pixels), axes.depth(pixels)
    from_top = depth - _contour_depth(target, lm.UPPER_INNER, axes, lateral)
    from_bottom = _contour_depth(target, lm.LOWER_INNER, axes, lateral) - depth
    source_top = _contour_depth(source, lm.UPPER_INNER, axes, lateral)
    source_bottom = _contour_depth(source, lm.LOWER_INNER, axes, lateral)
    upper = from_top <= from_bottom
    source_depth = np.where(upper, source_top + from_top, source_bottom - from_bottom)
    reach = np.where(upper, from_top, from_bottom)
    half_opening = np.maximum(source_bottom - source_top, 0.0) / 2
    real = np.clip(half_opening - reach + 0.5, 0.0, 1.0)
    position = axes.centre + lateral[:, None] * axes.right + source_depth[:, None] * axes.down
    return position[:, 0].astype(np.float32), position[:, 1].astype(np.float32), real.astype(np.float32)
