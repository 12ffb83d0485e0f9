"""The README's curl and syncsdk examples (``examples/``), run as written against a real server.

The README shows the two files verbatim (checked here too), so what a user copies is what was tested.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.acceptance import serving_folder
from tests.support.real_media import require_shared_media, trim_media
from tests.support.server import RunningServer, running_server

pytestmark = [pytest.mark.media, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
KEY = "lsk_examples_readme_key_0123456789"
TIMEOUT = 240


@pytest.fixture(scope="module")
def media_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    clips = require_shared_media()
    folder = tmp_path_factory.mktemp("media")
    trim_media(clips / "vrt_face3.mp4", folder / "face.mp4", 1.0)
    trim_media(clips / "sadtalker_RD_Radio31_000_en.wav", folder / "speech.m4a", 1.0)
    with serving_folder(folder) as base:
        yield f"{base}/face.mp4", f"{base}/speech.m4a"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {"LIPSYNC_FETCH_ALLOW_PRIVATE_ADDRESSES": "true", "LIPSYNC_WORKER_COUNT": "1"}
    with running_server(tmp_path_factory.mktemp("server"), KEY, env) as running:
        yield running


def run_example(command: list[str], server: RunningServer, cwd: Path) -> str:
    env = os.environ | {"SYNC_API_KEY": KEY, "LIPSYNC_SERVER": server.base}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, (done.stdout, done.stderr, server.log_text()[-3000:])
    return done.stdout


def test_the_readme_shows_both_examples_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in ("quickstart_curl.sh", "quickstart_syncsdk.py"):
        assert (EXAMPLES / name).read_text().strip() in readme, f"README.md no longer shows examples/{name}"


def test_the_curl_example(server: RunningServer, media_urls: tuple[str, str], tmp_path: Path) -> None:
    output = run_example(["bash", str(EXAMPLES / "quickstart_curl.sh"), *media_urls], server, tmp_path)
    assert "generation COMPLETED" in output
    assert '"status":"VALIDATED"' in output
    assert "batch COMPLETED: 1 result line(s) in results.jsonl" in output
    assert (tmp_path / "output.mp4").read_bytes()[4:8] == b"ftyp"


def test_the_syncsdk_example(server: RunningServer, media_urls: tuple[str, str], tmp_path: Path) -> None:
    command = [sys.executable, str(EXAMPLES / "quickstart_syncsdk.py"), *media_urls]
    lines = run_example(command, server, tmp_path).splitlines()
    assert lines[0].startswith("generation COMPLETED http://127.0.0.1:")
    assert lines[1] == "dry run VALIDATED"
    assert lines[2].startswith("batch COMPLETED 2 succeeded; results at http://127.0.0.1:")
