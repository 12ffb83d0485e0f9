"""Array type aliases for the engine's annotations (static typing only; nothing here runs per frame).

Each alias names the dtype the engine actually holds, so signatures say what flows where:

- ``Image``: uint8 pixels, an I420 frame (``(h * 3 // 2, w)``), one of its planes, or an RGB image.
- ``Floats``: float32 values: landmark points ``(n, 2)``, warp maps, ROI planes being blended, audio.
- ``Doubles``: float64 values: per-frame speech features and envelopes, numpy's default float results.
- ``Ints``: int32 values: mesh triangles ``(k, 3)`` and triangle labels per pixel.
- ``Indices``: numpy's native index integers (``np.intp``), as ``np.nonzero`` and ``np.argsort`` return.
- ``Bools``: boolean masks and per-frame flags.
- ``AnyArray``: only where the dtype really varies between callers (for example a plane that is uint8
  in one call and float32 in another).

numpy's stubs widen the result of most arithmetic to ``floating[Any]``; where the runtime dtype is known
to be kept, the engine says so with ``typing.cast`` rather than converting (which would copy).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

Image: TypeAlias = npt.NDArray[np.uint8]
Floats: TypeAlias = npt.NDArray[np.float32]
Doubles: TypeAlias = npt.NDArray[np.float64]
Ints: TypeAlias = npt.NDArray[np.int32]
Indices: TypeAlias = npt.NDArray[np.intp]
Bools: TypeAlias = npt.NDArray[np.bool_]
AnyArray: TypeAlias = npt.NDArray[Any]

__all__ = ["AnyArray", "Bools", "Doubles", "Floats", "Image", "Indices", "Ints"]
