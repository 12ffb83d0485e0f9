"""Face mesh landmark indices and mesh topology used by tracking, rendering and evaluation."""

from __future__ import annotations

import importlib.util
import math
from functools import cache
from pathlib import Path

import numpy as np

from lipsync_api.engine.arrays import Floats, Ints

# Inner lip contours, corner to corner (78 -> 308); index j of one pairs with index j of the other.
UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
# Outer lip contours, corner to corner (61 -> 291), aligned with the inner ones above.
UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
MOUTH_CORNERS = (61, 291)
INNER_CORNERS = (78, 308)
INNER_LIP_MID = (13, 14)
# The lower half of the face oval, from the left cheek round the chin to the right cheek.
JAW_LINE = (
    234,
    93,
    132,
    58,
    172,
    136,
    150,
    149,
    176,
    148,
    152,
    377,
    400,
    378,
    379,
    365,
    397,
    288,
    361,
    323,
    454,
)
CHIN = 152
NOSE_TIP = 1
EYE_OUTER = (33, 263)
LANDMARK_COUNT = 468


def _tessellation() -> frozenset[tuple[int, int]]:
    """mediapipe's face mesh edge list, read from its plain data module.

    Importing ``mediapipe`` itself takes most of a second; this module is a bare table, so it is loaded
    alone (a render from a cached analysis never needs the rest of mediapipe).
    """
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or spec.origin is None:
        raise ImportError("mediapipe is not installed")
    path = Path(spec.origin).parent / "python" / "solutions" / "face_mesh_connections.py"
    table = importlib.util.spec_from_file_location("_face_mesh_connections", path)
    assert table is not None and table.loader is not None
    module = importlib.util.module_from_spec(table)
    table.loader.exec_module(module)
    edges: frozenset[tuple[int, int]] = module.FACEMESH_TESSELATION
    return edges


@cache
def mesh_triangles() -> Ints:
    """The face mesh's triangles (k, 3), recovered from its edge list; the mouth stays a hole."""
    edges = {tuple(sorted(e)) for e in _tessellation()}
    neighbours: dict[int, set[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    triangles = {tuple(sorted((a, b, c))) for a, b in edges for c in neighbours[a] & neighbours[b]}
    return np.array(sorted(triangles), dtype=np.int32)


def inner_mouth_polygon(points: Floats) -> Floats:
    """The inner lip contour as a closed polygon (upper lip left to right, lower lip back)."""
    order = list(UPPER_INNER) + list(reversed(LOWER_INNER[1:-1]))
    return points[order]


def mouth_opening_ratio(points: Floats) -> float:
    """Inner-lip gap over mouth width: 0 for closed lips, about 0.5 for a wide-open mouth."""
    gap = math.hypot(*(points[INNER_LIP_MID[0]] - points[INNER_LIP_MID[1]]))
    width = math.hypot(*(points[MOUTH_CORNERS[0]] - points[MOUTH_CORNERS[1]]))
    return gap / width if width > 1e-6 else 0.0
