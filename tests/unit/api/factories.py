"""Valid generate payloads to start tests from (each test changes only what it is about)."""

from __future__ import annotations

import copy
import json
from typing import Any

VIDEO_URL = "https://media.example.com/talking_head.mp4"
AUDIO_URL = "https://media.example.com/speech.wav"

# The CreateGenerationDto example of API.md, character for character.
API_MD_EXAMPLE = json.loads("""
{"model": "lipsync-2",
 "input": [{"type": "video", "url": "https://..."},
           {"type": "audio", "url": "https://...", "refId": "a1"}],
 "options": {"sync_mode": "cut_off", "temperature": 0.5,
             "active_speaker_detection": {"auto_detect": true},
             "occlusion_detection_enabled": false},
 "segments": [{"startTime": 0.0, "endTime": 4.2, "audioInput": {"refId": "a1", "startTime": 0, "endTime": 4.2}}],
 "webhookUrl": "https://...",
 "outputFileName": "clip_01"}
""")  # noqa: E501 (kept exactly as API.md prints it)


def simple_payload(**top: Any) -> dict[str, Any]:
    """One video, one audio, nothing else; ``top`` adds or replaces top-level keys."""
    payload: dict[str, Any] = {
        "model": "lipsync-2",
        "input": [{"type": "video", "url": VIDEO_URL}, {"type": "audio", "url": AUDIO_URL}],
    }
    payload.update(top)
    return payload


def segmented_payload() -> dict[str, Any]:
    """One video, two audio tracks, two segments, every option set."""
    return {
        "model": "lipsync-2",
        "input": [
            {"type": "video", "url": VIDEO_URL},
            {"type": "audio", "url": AUDIO_URL, "refId": "a1"},
            {"type": "audio", "url": "https://media.example.com/b.mp3", "refId": "b2"},
        ],
        "options": {
            "sync_mode": "silence",
            "temperature": 0.8,
            "active_speaker_detection": {
                "auto_detect": False,
                "frame_number": 3,
                "coordinates": [320, 180],
                "bounding_boxes": [[10, 20, 110, 140], None],
            },
            "occlusion_detection_enabled": True,
        },
        "segments": [
            {"startTime": 0, "endTime": 2.5, "audioInput": {"refId": "a1"}},
            {"startTime": 2.5, "endTime": 4, "audioInput": {"refId": "b2", "startTime": 1, "endTime": 2.5}},
        ],
        "webhookUrl": "https://hooks.example.com/done",
        "outputFileName": "clip-01_b",
    }


def valid_payloads() -> list[dict[str, Any]]:
    """Fresh copies of every valid payload above."""
    return [copy.deepcopy(p) for p in (API_MD_EXAMPLE, simple_payload(), segmented_payload())]
