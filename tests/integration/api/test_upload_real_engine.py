"""End to end: the official SDK uploads real clips to a real server, and the real engine renders them.

``Sync(...).generations.create_with_files(model=..., video=open(...), audio=open(...))`` sends a multipart
form (``model`` plus the two files); the server stores them as assets, and the engine reads the assets'
files from local storage (the server never reads other local paths).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sync import Sync

from lipsync_api.engine.media import probe
from tests.support.real_media import require_shared_media, trim_media
from tests.support.server import running_server

pytestmark = [pytest.mark.media, pytest.mark.slow]

KEY = "lsk_upload_e2e_key_0123456789abcdef"
CLIP_SECONDS = 1.0
GENERATION_TIMEOUT = 240.0


def wait_until_final(client: Sync, generation_id: str) -> Any:
    """Poll until the generation leaves PENDING/PROCESSING; fail after a generous timeout."""
    deadline = time.monotonic() + GENERATION_TIMEOUT
    while time.monotonic() < deadline:
        generation = client.generations.get(generation_id)
        if generation.status not in ("PENDING", "PROCESSING"):
            return generation
        time.sleep(0.5)
    pytest.fail(f"generation {generation_id} did not finish within {GENERATION_TIMEOUT:.0f} s")


def test_the_sdk_uploads_files_and_the_real_engine_renders_them(tmp_path: Path) -> None:
    clips = require_shared_media()
    video_path = trim_media(clips / "vrt_face3.mp4", tmp_path / "face.mp4", CLIP_SECONDS)
    audio_path = trim_media(clips / "sadtalker_RD_Radio31_000_en.wav", tmp_path / "speech.m4a", CLIP_SECONDS)
    (tmp_path / "server").mkdir()
    with running_server(tmp_path / "server", KEY) as server:
        client = Sync(base_url=server.base, api_key=KEY, timeout=60)
        with video_path.open("rb") as video, audio_path.open("rb") as audio:
            created = client.generations.create_with_files(model="lipsync-2", video=video, audio=audio)
        assert [(item.type, bool(item.asset_id)) for item in created.input] == [
            ("video", True),
            ("audio", True),
        ]
        done = wait_until_final(client, created.id)
        assert done.status == "COMPLETED" and done.output_url, (done, server.log_text()[-3000:])
        output = tmp_path / "out.mp4"
        output.write_bytes(httpx.get(done.output_url, timeout=60).content)
    info = probe(output)
    assert info.video is not None and info.audio is not None
    assert abs(info.duration - CLIP_SECONDS) < 0.3
    data = tmp_path / "server" / "data"
    assert list((data / "tmp").iterdir()) == []
    stored = sorted(path.name for path in (data / "files" / "assets").glob("*/*"))
    assert stored == ["audio", "video"]
