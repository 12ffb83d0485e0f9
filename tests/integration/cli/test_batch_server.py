"""The CLI against a real server subprocess (real engine, 1 s clips from a local media host).

One server for the module, one worker: ``submit --wait`` to the end, ``status``, ``list --status``,
``results`` downloaded then resumed after an interruption, ``cancel`` of a batch held at its first line,
Ctrl-C while watching, ``generate --server`` (JSON with URLs, an upload with local files), and how the
server's errors are shown.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sync.common import Generation
from sync.core.pydantic_utilities import parse_obj_as
from typer.testing import Result

import lipsync_api.cli.batch as batch_cli
from lipsync_api.engine.media import probe
from tests.integration.cli.conftest import Clips, MediaHost, assert_exit, cli, flat
from tests.support.server import RunningServer, running_server

pytestmark = [pytest.mark.media, pytest.mark.slow]

KEY = "lsk_cli_batch_tests_0123456789abcdef"
BATCH_ID = re.compile(r"batch ([0-9a-f-]{36}):")
TIMEOUT = 120.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, media_host: MediaHost) -> Iterator[RunningServer]:
    env = {"LIPSYNC_FETCH_ALLOW_PRIVATE_ADDRESSES": "true", "LIPSYNC_WORKER_COUNT": "1"}
    with running_server(tmp_path_factory.mktemp("cli-server"), KEY, env) as running:
        yield running


@pytest.fixture(scope="module")
def env(server: RunningServer) -> dict[str, str]:
    """The server and key as the environment variables the CLI reads."""
    return {"LIPSYNC_SERVER": server.base, "SYNC_API_KEY": KEY}


def batch_file(folder: Path, lines: list[tuple[str, str, str]]) -> Path:
    path = folder / "batch.jsonl"
    entries = [
        {
            "request_id": request_id,
            "endpoint": "/v2/generate",
            "payload": {
                "model": "lipsync-2",
                "input": [{"type": "video", "url": video}, {"type": "audio", "url": audio}],
            },
        }
        for request_id, video, audio in lines
    ]
    path.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    return path


def get_batch(server: RunningServer, batch_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.base}/v2/batch/{batch_id}", headers={"x-api-key": KEY}, timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def batch_id_of(result: Result) -> str:
    found = BATCH_ID.search(result.stdout)
    assert found, result.output
    return found.group(1)


# --- a batch from submit to results ----------------------------------------------------------------


@pytest.fixture(scope="module")
def submitted(
    tmp_path_factory: pytest.TempPathFactory, media_host: MediaHost, env: dict[str, str]
) -> tuple[str, Result]:
    """``submit --wait``: two good lines and one whose audio is missing on the media host."""
    lines = [
        ("take/1", media_host.url("face.mp4"), media_host.url("speech.m4a")),
        ("take_2", media_host.url("face.mp4"), media_host.url("speech.m4a")),
        ("missing", media_host.url("face.mp4"), media_host.url("no-such.m4a")),
    ]
    path = batch_file(tmp_path_factory.mktemp("submit"), lines)
    result = cli("batch", "submit", path, "--wait", env=env)
    return batch_id_of(result), result


def test_submit_wait_follows_the_batch_to_its_end(
    submitted: tuple[str, Result], server: RunningServer
) -> None:
    batch_id, result = submitted
    assert_exit(result, 0)
    text = flat(result)
    assert f"batch {batch_id}: JOBS_CREATED, 3 generation(s)" in text
    assert "status COMPLETED" in text and "lines 3: 2 succeeded, 1 failed, 0 canceled, 0 pending" in text
    assert f"download: lipsync-api batch results {batch_id} -o DIR" in text
    assert get_batch(server, batch_id)["status"] == "COMPLETED"


def test_dry_run_validates_without_creating(
    tmp_path: Path, media_host: MediaHost, env: dict[str, str]
) -> None:
    path = batch_file(tmp_path, [("a", media_host.url("face.mp4"), media_host.url("speech.m4a"))])
    result = cli("batch", "submit", path, "--dry-run", env=env)
    assert_exit(result, 0)
    assert "VALIDATED: 1 generation(s)" in flat(result)
    assert "estimated frames: 25" in flat(result)


def test_status_and_list(submitted: tuple[str, Result], server: RunningServer) -> None:
    batch_id, _ = submitted
    options = ("--server", server.base, "--api-key", KEY)
    status = cli("batch", "status", batch_id, *options)
    assert_exit(status, 0)
    assert "status COMPLETED" in flat(status)
    as_json = cli("batch", "status", batch_id, "--json", *options)
    assert json.loads(as_json.stdout)["metrics"]["success_count"] == 2
    done = cli("batch", "list", "--status", "completed", "--json", *options)
    assert_exit(done, 0)
    assert batch_id in [b["id"] for b in json.loads(done.stdout)]
    running = cli("batch", "list", "--status", "PROCESSING", "--json", *options)
    assert batch_id not in [b["id"] for b in json.loads(running.stdout)]
    table = cli("batch", "list", *options)
    assert_exit(table, 0)
    assert batch_id in table.stdout  # whole, never cut short


def test_results_then_resumed_after_an_interruption(
    submitted: tuple[str, Result], env: dict[str, str], tmp_path: Path
) -> None:
    batch_id, _ = submitted
    out = tmp_path / "results"
    first = cli("batch", "results", batch_id, "-o", out, env=env)
    assert_exit(first, 0)
    lines = [json.loads(text) for text in (out / "results.jsonl").read_text().splitlines()]
    assert [line["request_id"] for line in lines] == ["take/1", "take_2", "missing"]
    generations = [parse_obj_as(Generation, line["response"]) for line in lines]
    assert [g.status for g in generations] == ["COMPLETED", "COMPLETED", "FAILED"]
    assert "missing: FAILED [generation_media_fetch_failed]" in flat(first)
    assert "2 fetched, 0 already complete" in flat(first)
    videos = sorted(out.glob("*.mp4"))
    assert len(videos) == 2 and (out / "take_2.mp4") in videos
    for video in videos:
        info = probe(video)
        assert info.video is not None and info.video.codec == "h264"
    # Interrupted: one output lost, and its download cut off mid-way.
    first_output = next(path for path in videos if path.name.startswith("take_1-"))
    first_output.rename(first_output.with_name(first_output.name + ".part"))
    first_output.with_name(first_output.name + ".part").write_bytes(b"cut off")
    kept = (out / "take_2.mp4").stat().st_mtime_ns
    again = cli("batch", "results", batch_id, "-o", out, env=env)
    assert_exit(again, 0)
    assert "1 fetched, 1 already complete" in flat(again)
    assert (out / "take_2.mp4").stat().st_mtime_ns == kept
    assert probe(first_output).video is not None
    assert not list(out.glob("*.part"))


# --- cancel, and Ctrl-C while watching -------------------------------------------------------------


@pytest.fixture(scope="module")
def held(
    tmp_path_factory: pytest.TempPathFactory,
    media_host: MediaHost,
    env: dict[str, str],
    server: RunningServer,
) -> Iterator[str]:
    """A batch whose every line waits at the media host's gate: the one worker holds one line, two wait."""
    gated = media_host.url("gate/face.mp4")
    lines = [(f"held_{n}", gated, media_host.url("speech.m4a")) for n in range(3)]
    result = cli("batch", "submit", batch_file(tmp_path_factory.mktemp("held"), lines), env=env)
    assert_exit(result, 0)
    batch_id = batch_id_of(result)
    wait_for("the first line to reach the gate", lambda: media_host.held > 0)
    try:
        yield batch_id
    finally:
        media_host.gate.set()


def test_ctrl_c_stops_watching_not_the_batch(
    held: str, env: dict[str, str], server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_cli, "watch_batch", interrupted)
    result = cli("batch", "status", held, "--wait", env=env)
    assert_exit(result, 130)
    assert f"resume: lipsync-api batch status {held} --wait" in flat(result)
    assert get_batch(server, held)["status"] == "PROCESSING"


def test_results_of_a_running_batch_are_refused(held: str, env: dict[str, str], tmp_path: Path) -> None:
    result = cli("batch", "results", held, "-o", tmp_path, env=env)
    assert_exit(result, 1)
    assert "is PROCESSING: its results exist once it ends" in flat(result)


def test_cancel_then_watch_to_the_end(
    held: str, env: dict[str, str], server: RunningServer, media_host: MediaHost
) -> None:
    canceled = cli("batch", "cancel", held, env=env)
    assert_exit(canceled, 0)
    assert "status CANCELED" in flat(canceled)
    assert "2 canceled, 1 pending" in flat(canceled)  # the held line is still running
    media_host.gate.set()
    watched = cli("batch", "status", held, "--wait", env=env)
    assert_exit(watched, 1)  # a batch that did not complete
    assert "lines 3: 1 succeeded, 0 failed, 2 canceled, 0 pending" in flat(watched)
    assert get_batch(server, held)["outputUrl"]


# --- one generation on the server ------------------------------------------------------------------


@pytest.mark.parametrize("where", ["urls", "files"])
def test_generate_on_the_server(
    where: str, clips: Clips, media_host: MediaHost, env: dict[str, str], tmp_path: Path
) -> None:
    if where == "urls":
        video, audio = media_host.url("face.mp4"), media_host.url("speech.m4a")
    else:
        video, audio = str(clips.face), str(clips.speech)
    output = tmp_path / "out.mp4"
    server = env["LIPSYNC_SERVER"]
    result = cli("generate", "--video", video, "--audio", audio, "-o", output, "--server", server, env=env)
    assert_exit(result, 0)
    info = probe(output)
    assert info.video is not None and info.video.codec == "h264"
    assert info.duration == pytest.approx(1.0, abs=0.15)
    assert "generation" in flat(result) and not list(tmp_path.glob("*.part"))


# --- errors ----------------------------------------------------------------------------------------


def test_errors_show_code_status_and_every_message(tmp_path: Path, env: dict[str, str]) -> None:
    missing = cli("batch", "status", "no-such-batch", env=env)
    assert_exit(missing, 1)
    assert flat(missing) == "error (404): batch no-such-batch not found"
    wrong_key = cli("batch", "list", env=env | {"SYNC_API_KEY": "lsk_wrong_key_0123456789"})
    assert_exit(wrong_key, 1)
    assert flat(wrong_key).startswith("error [unauthorized] (401):")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"request_id": "a"}\nnot json\n')
    invalid = cli("batch", "submit", bad, env=env)
    assert_exit(invalid, 1)
    lines = invalid.output.splitlines()
    assert lines[0] == "error [invalid_batch_file] (400):"
    assert any(line.startswith("  line 1: endpoint:") for line in lines)
    assert any(line.startswith("  line 2: not valid JSON") for line in lines)
