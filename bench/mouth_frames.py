"""Write close-ups of the mouth, source above output, for looking at the render with your own eyes.

Usage: python bench/mouth_frames.py OUTPUT.mp4 SOURCE.mp4 FRAME[,FRAME...] [-o mouths.png]

The crop follows the face tracked in SOURCE. The images show real people from ../shared/media: keep them
out of the repository and out of anything the project ships (see that folder's README).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from lipsync_api.engine.analysis import analyse_video
from lipsync_api.engine.media import check_video_limits, iter_video_frames, probe
from lipsync_api.engine.request import EngineConfig

TILE = (240, 168)


def mouth_tiles(video: Path, landmarks: np.ndarray, frames: set[int]) -> list[np.ndarray]:
    """Mouth crops of the chosen frames of ``video`` (BGR), cut around the tracked mouth."""
    info = check_video_limits(probe(video), EngineConfig())
    tiles = []
    for index, frame in enumerate(iter_video_frames(video, info)):
        if index in frames and np.isfinite(landmarks[index, 0, 0]):
            image = cv2.cvtColor(frame, cv2.COLOR_YUV2BGR_I420)
            points = landmarks[index]
            cx, cy = (points[61] + points[291]) / 2
            half = int(0.9 * np.hypot(*(points[291] - points[61])))
            top, left = max(0, int(cy - 0.7 * half)), max(0, int(cx - half))
            tiles.append(cv2.resize(image[top : top + int(1.4 * half), left : left + 2 * half], TILE))
        if index >= max(frames):
            break
    return tiles


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("output", type=Path)
    parser.add_argument("source", type=Path)
    parser.add_argument("frames")
    parser.add_argument("-o", "--out", type=Path, default=Path("/tmp/mouths.png"))
    args = parser.parse_args()
    chosen = {int(value) for value in args.frames.split(",")}
    info = check_video_limits(probe(args.source), EngineConfig())
    work = args.out.with_suffix(".analysis")
    landmarks = analyse_video(args.source, info, None, work).landmarks
    rows = [np.hstack(mouth_tiles(path, landmarks, chosen)) for path in (args.source, args.output)]
    cv2.imwrite(str(args.out), np.vstack(rows))
    print(f"wrote {args.out} (top: source, bottom: output; frames {sorted(chosen)})")


if __name__ == "__main__":
    main()
