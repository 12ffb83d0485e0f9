"""Several faces in view: the largest is animated unless active_speaker_detection points elsewhere."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from lipsync_api.engine.media import check_video_limits, iter_video_frames, probe
from lipsync_api.engine.pipeline import render
from lipsync_api.engine.request import AudioInput, EngineConfig, GenerationRequest, SpeakerHint

CONFIG = EngineConfig()
SMALL = 296  # the second face is drawn at half size on the right
CHANGED = 3.0  # mean absolute luma change that counts as re-rendered (measured: ~7.8 animated, ~1.3 not)


@pytest.fixture(scope="module")
def two_faces(face3_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The frontal speaker twice: full size on the left, half size on the right (886x590)."""
    out_path = tmp_path_factory.mktemp("two-faces") / "two_faces.mp4"
    info = check_video_limits(probe(face3_clip), CONFIG)
    with av.open(str(out_path), "w") as out:
        stream = out.add_stream("libx264", rate=info.fps, options={"preset": "ultrafast", "crf": "12"})
        stream.width, stream.height, stream.pix_fmt = info.width + SMALL, info.height, "yuv420p"
        for index, frame in enumerate(iter_video_frames(face3_clip, info)):
            rgb = cv2.cvtColor(frame, cv2.COLOR_YUV2RGB_I420)
            canvas = np.full((info.height, info.width + SMALL, 3), 40, np.uint8)
            canvas[:, : info.width] = rgb
            top = (info.height - SMALL) // 2
            canvas[top : top + SMALL, info.width :] = cv2.resize(
                rgb, (SMALL, SMALL), interpolation=cv2.INTER_AREA
            )
            picture = av.VideoFrame.from_ndarray(canvas, format="rgb24")
            picture.pts, picture.time_base = index, 1 / Fraction(info.fps)
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
    return out_path


def mouth_change(source: Path, output: Path, box: tuple[int, int, int, int]) -> float:
    """Mean absolute luma difference between source and output frames inside a box."""
    x0, y0, x1, y1 = box
    src_info = check_video_limits(probe(source), CONFIG)
    out_info = check_video_limits(probe(output), CONFIG)
    height = src_info.height
    diffs = [
        float(
            np.abs(
                a[:height][y0:y1, x0:x1].astype(np.int16) - b[:height][y0:y1, x0:x1].astype(np.int16)
            ).mean()
        )
        for a, b in zip(
            iter_video_frames(source, src_info), iter_video_frames(output, out_info), strict=False
        )
    ]
    return float(np.mean(diffs))


def boxes(width: int = 590, height: int = 590) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Lower-face boxes of the large (left) and small (right) face."""
    large = (int(width * 0.3), int(height * 0.6), int(width * 0.7), int(height * 0.85))
    top = (height - SMALL) // 2
    small = (
        width + int(SMALL * 0.3),
        top + int(SMALL * 0.6),
        width + int(SMALL * 0.7),
        top + int(SMALL * 0.85),
    )
    return large, small


def generate(video: Path, speech: Path, work: Path, speaker: SpeakerHint | None) -> Path:
    request = GenerationRequest(
        video=str(video), audios=(AudioInput(str(speech)),), speaker=speaker, allow_local_files=True
    )
    result = render(request, work, CONFIG)
    assert result.faces_detected >= 2
    return result.output_path


def test_the_largest_face_is_animated(two_faces: Path, speech_en: Path, tmp_path: Path) -> None:
    output = generate(two_faces, speech_en, tmp_path, None)
    large, small = boxes()
    assert mouth_change(two_faces, output, large) > CHANGED
    assert mouth_change(two_faces, output, small) < CHANGED


def test_a_point_on_the_other_face_animates_it(two_faces: Path, speech_en: Path, tmp_path: Path) -> None:
    top = (590 - SMALL) // 2
    hint = SpeakerHint(frame_number=0, coordinates=(590 + SMALL / 2, top + SMALL / 2))
    output = generate(two_faces, speech_en, tmp_path, hint)
    large, small = boxes()
    assert mouth_change(two_faces, output, small) > CHANGED
    assert mouth_change(two_faces, output, large) < CHANGED
