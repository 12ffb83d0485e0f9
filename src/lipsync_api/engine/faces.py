"""Face detection and landmark tracking (mediapipe 0.10.21's bundled models; nothing is downloaded)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d

from lipsync_api.engine.arrays import Bools, Floats, Image
from lipsync_api.engine.landmarks import LANDMARK_COUNT
from lipsync_api.engine.request import SpeakerHint

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
DETECT_MAX_SIDE = 640  # detection runs on a downscaled frame: the full-range model needs no more
MESH_MAX_SIDE = 384  # the mesh model looks at 192x192; twice that keeps crops cheap without losing detail
CROP_SCALE = 1.9  # crop side relative to the face box: room for head motion between frames
SMOOTHING_SIGMA = 0.8  # frames; light, so lips that really move in the source are still followed


@dataclass(frozen=True)
class FaceTrack:
    """Smoothed landmarks of the animated face: (frames, 468, 2) pixels, NaN where no face."""

    landmarks: Floats
    faces_detected: int

    @property
    def present(self) -> Bools:
        """Per-frame flag: the animated face was found in this frame."""
        return cast(Bools, np.isfinite(self.landmarks[:, 0, 0]))

    @property
    def face_frames(self) -> int:
        """How many frames show the animated face."""
        return int(self.present.sum())


def _i420_crop_to_rgb(frame: Image, width: int, height: int, box: tuple[int, int, int, int]) -> Image:
    """Convert just the crop (even-aligned) of an I420 frame to RGB."""
    x0, y0, x1, y1 = box
    y_plane = frame[:height]
    chroma = frame[height:].reshape(2, height // 2, width // 2)
    u = chroma[0, y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
    v = chroma[1, y0 // 2 : y1 // 2, x0 // 2 : x1 // 2]
    yuv = cv2.merge(
        [
            y_plane[y0:y1, x0:x1],
            cv2.resize(u, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST),
            cv2.resize(v, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST),
        ]
    )
    return cast(Image, cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB))


def _scaled(rgb: Image, max_side: int) -> tuple[Image, float]:
    """Downscale so the longer side is at most ``max_side``; returns the image and its scale."""
    scale = min(1.0, max_side / max(rgb.shape[:2]))
    if scale >= 1.0:
        return rgb, 1.0
    size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
    return cast(Image, cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)), scale


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _distance_to_box(point: tuple[float, float], box: Box) -> float:
    dx = max(box[0] - point[0], 0.0, point[0] - box[2])
    dy = max(box[1] - point[1], 0.0, point[1] - box[3])
    return float(np.hypot(dx, dy))


def choose_face(boxes: Sequence[Box], speaker: SpeakerHint | None, hint_box: Box | None) -> Box | None:
    """Pick the face to animate: the hinted box or point when given, else the largest."""
    if not boxes:
        return None
    if hint_box is not None:
        best = max(boxes, key=lambda b: _iou(b, hint_box))
        return best if _iou(best, hint_box) > 0.1 else None
    if speaker is not None and speaker.coordinates is not None:
        point = speaker.coordinates
        return min(boxes, key=lambda b: (_distance_to_box(point, b), -(b[2] - b[0]) * (b[3] - b[1])))
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))


class FaceTracker:
    """Streams frames in order and returns the animated face's landmarks for each (or None)."""

    def __init__(
        self, width: int, height: int, speaker: SpeakerHint | None = None, *, refine: bool = False
    ) -> None:
        from mediapipe.python.solutions import face_detection, face_mesh

        self.width, self.height, self.speaker = width, height, speaker
        self._detector: Any = face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
        self._mesh: Any = face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=1,
            refine_landmarks=refine,
            min_detection_confidence=0.5,
            min_tracking_confidence=0.5,
        )
        self._box: Box | None = None
        self.faces_detected = 0

    def close(self) -> None:
        """Release the mediapipe graphs."""
        self._detector.close()
        self._mesh.close()

    def __enter__(self) -> FaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def track(self, index: int, frame: Image) -> Floats | None:
        """Landmarks (468, 2) in pixels of the animated face in this I420 frame, or None."""
        hint_box = self._hint_box(index)
        if self._hinted_out(index):
            self._box = None
            return None
        if self._box is None or (hint_box is not None and _iou(self._box, hint_box) < 0.3):
            self._box = choose_face(self._detect(frame), self.speaker, hint_box)
            if self._box is None:
                return None
        points = self._mesh_in_box(frame, self._box)
        self._box = None if points is None else self._box_from(points)
        return points

    def _hint_box(self, index: int) -> Box | None:
        boxes = self.speaker.bounding_boxes if self.speaker else None
        if not boxes:
            return None
        box = boxes[min(index, len(boxes) - 1)]
        return None if box is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3]))

    def _hinted_out(self, index: int) -> bool:
        """Per-frame boxes were given and this frame's is null: nobody is animated here."""
        boxes = self.speaker.bounding_boxes if self.speaker else None
        return bool(boxes) and index < len(boxes or ()) and (boxes or ())[index] is None

    def _detect(self, frame: Image) -> list[Box]:
        rgb, _scale = _scaled(
            _i420_crop_to_rgb(frame, self.width, self.height, (0, 0, self.width, self.height)),
            DETECT_MAX_SIDE,
        )
        result = self._detector.process(rgb)
        boxes: list[Box] = []
        for detection in result.detections or []:
            rel = detection.location_data.relative_bounding_box
            x0, y0 = rel.xmin * self.width, rel.ymin * self.height
            boxes.append((x0, y0, x0 + rel.width * self.width, y0 + rel.height * self.height))
        self.faces_detected = max(self.faces_detected, len(boxes))
        return boxes

    def _crop_for(self, box: Box) -> tuple[int, int, int, int]:
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half = CROP_SCALE * max(box[2] - box[0], box[3] - box[1]) / 2
        x0, y0 = max(0, int(cx - half) & ~1), max(0, int(cy - half) & ~1)
        x1, y1 = min(self.width, int(cx + half + 2) & ~1), min(self.height, int(cy + half + 2) & ~1)
        return x0, y0, x1, y1

    def _mesh_in_box(self, frame: Image, box: Box) -> Floats | None:
        crop = self._crop_for(box)
        if crop[2] - crop[0] < 16 or crop[3] - crop[1] < 16:
            return None
        rgb, _ = _scaled(_i420_crop_to_rgb(frame, self.width, self.height, crop), MESH_MAX_SIDE)
        result = self._mesh.process(rgb)
        if not result.multi_face_landmarks:
            return None
        marks = result.multi_face_landmarks[0].landmark
        rel = np.array([(m.x, m.y) for m in marks[:LANDMARK_COUNT]], dtype=np.float32)
        size = np.array([crop[2] - crop[0], crop[3] - crop[1]], dtype=np.float32)
        return rel * size + np.array(crop[:2], dtype=np.float32)

    @staticmethod
    def _box_from(points: Floats) -> Box:
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)


def smooth_landmarks(landmarks: Floats, sigma: float = SMOOTHING_SIGMA) -> Floats:
    """Gaussian smoothing over time within each unbroken run of frames that show the face."""
    out = landmarks.copy()
    present = np.isfinite(landmarks[:, 0, 0])
    edges = np.flatnonzero(np.diff(np.concatenate([[0], present.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        if stop - start > 1:
            out[start:stop] = gaussian_filter1d(landmarks[start:stop], sigma, axis=0, mode="nearest")
    return out
