"""``batch validate`` (the server's validator, offline) and ``batch run`` (no server; real clips)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sync.common import Generation
from sync.core.pydantic_utilities import parse_obj_as
from typer.testing import Result

from lipsync_api.engine.media import probe
from tests.integration.cli.conftest import Clips, assert_exit, cli, copy_clips, flat
from tests.support.server import free_port

pytestmark = [pytest.mark.media]


def line(request_id: str, video: str, audio: str, **extra: Any) -> str:
    payload = {
        "model": "lipsync-2",
        "input": [{"type": "video", "url": video}, {"type": "audio", "url": audio}],
    }
    return json.dumps({"request_id": request_id, "endpoint": "/v2/generate", "payload": payload, **extra})


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(text + "\n" for text in lines))
    return path


# --- validate --------------------------------------------------------------------------------------


def test_validate_names_every_problem_with_its_line(tmp_path: Path) -> None:
    batch = write_lines(
        tmp_path / "bad.jsonl",
        line("a", "https://media.example/v.mp4", "https://media.example/a.wav"),
        line("a", "https://media.example/v.mp4", "ftp://media.example/a.wav"),
        "{not json",
        "",
        json.dumps({"request_id": "d", "endpoint": "/v1/other", "payload": {"model": "lipsync-2"}}),
    )
    result = cli("batch", "validate", batch)
    assert_exit(result, 1)
    text = flat(result)
    assert "line 1:" not in text
    assert "line 2: request_id: 'a' duplicates line 1" in text
    assert "line 2: payload.input[1].url: must be an http(s) URL" in text
    assert "line 3: not valid JSON" in text
    assert "line 5: endpoint:" in text and "line 5: payload.input: required" in text
    assert "problem(s)" in text


def test_validate_accepts_a_good_file(tmp_path: Path) -> None:
    batch = write_lines(
        tmp_path / "good.jsonl",
        line("a", "https://media.example/v.mp4", "https://media.example/a.wav"),
        line("b", "https://media.example/v.mp4", "https://media.example/b.wav"),
    )
    result = cli("batch", "validate", batch)
    assert_exit(result, 0)
    assert "valid, 2 request(s)" in flat(result)


def test_local_paths_are_for_batch_run_only(tmp_path: Path, clips: Clips) -> None:
    copy_clips(clips, tmp_path)
    batch = write_lines(
        tmp_path / "local.jsonl",
        line("a", "face.mp4", "speech.m4a"),
        line("b", str(tmp_path / "face.mp4"), "missing.m4a"),
    )
    as_server = cli("batch", "validate", batch)
    assert_exit(as_server, 1)
    assert "line 1: payload.input[0].url: must be an http(s) URL" in flat(as_server)
    for_run = cli("batch", "validate", "--local", batch)
    assert_exit(for_run, 1)
    assert flat(for_run).startswith(f"line 2: payload.input[1].url: no such file: {tmp_path / 'missing.m4a'}")
    assert "line 1" not in flat(for_run)


def test_validate_uses_the_configured_limits(tmp_path: Path) -> None:
    batch = write_lines(
        tmp_path / "three.jsonl",
        *(line(f"r{n}", "https://m.example/v.mp4", "https://m.example/a.wav") for n in range(3)),
    )
    result = cli("batch", "validate", batch, env={"LIPSYNC_BATCH_MAX_REQUESTS": "2"})
    assert_exit(result, 1)
    assert "line 3: more than 2 requests (the limit)" in flat(result)


# --- run -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory, clips: Clips) -> tuple[Path, Path, Result]:
    """One ``batch run``: relative and absolute local paths, and a line whose audio is not audio."""
    work = tmp_path_factory.mktemp("run")
    copy_clips(clips, work / "media")
    batch = write_lines(
        work / "media" / "batch.jsonl",
        line("hello/1", "face.mp4", "speech.m4a"),
        line("hello_2", str(work / "media" / "face.mp4"), "./speech.m4a"),
        line("broken", "face.mp4", "notes.m4a"),
    )
    output = work / "out"
    return batch, output, cli("batch", "run", batch, "-o", output)


def results_lines(output: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for text in (output / "results.jsonl").read_text().splitlines()]


def test_run_completes_with_one_results_line_per_input_line(ran: tuple[Path, Path, Result]) -> None:
    _, output, result = ran
    assert_exit(result, 0)
    lines = results_lines(output)
    assert [entry["request_id"] for entry in lines] == ["hello/1", "hello_2", "broken"]
    generations = [parse_obj_as(Generation, entry["response"]) for entry in lines]
    assert [g.status for g in generations] == ["COMPLETED", "COMPLETED", "REJECTED"]
    assert generations[2].error_code == "generation_media_unsupported" and generations[2].error
    text = flat(result)
    assert "COMPLETED" in text and "3: 2 succeeded, 1 failed, 0 canceled, 0 pending" in text
    assert "broken" in text and "generation_media_unsupported" in text  # the failed line, with its error


def test_run_leaves_playable_outputs_named_by_request_id(ran: tuple[Path, Path, Result]) -> None:
    _, output, _ = ran
    outputs = sorted(path.name for path in output.glob("*.mp4"))
    assert len(outputs) == 2 and "hello_2.mp4" in outputs
    assert [name for name in outputs if name.startswith("hello_1-")], outputs  # "hello/1", cleaned and tagged
    for name in outputs:
        info = probe(output / name)
        assert info.video is not None and info.video.codec == "h264"
        assert info.audio is not None and info.audio.codec == "aac"
        assert info.duration == pytest.approx(1.0, abs=0.15)
    assert not list(output.glob("*.part"))


def test_running_the_same_file_again_reuses_the_finished_batch(ran: tuple[Path, Path, Result]) -> None:
    batch, output, _ = ran
    before = {path.name: path.stat().st_mtime_ns for path in output.glob("*.mp4")}
    again = cli("batch", "run", batch, "-o", output)
    assert_exit(again, 0)
    assert "already ran as batch" in flat(again)
    assert "0 fetched, 2 already complete" in flat(again)
    assert {path.name: path.stat().st_mtime_ns for path in output.glob("*.mp4")} == before
    assert len(results_lines(output)) == 3


def test_run_refuses_an_invalid_file_before_running_anything(tmp_path: Path, clips: Clips) -> None:
    copy_clips(clips, tmp_path)
    batch = write_lines(tmp_path / "b.jsonl", line("a", "face.mp4", "nope.m4a"), "[]")
    result = cli("batch", "run", batch, "-o", tmp_path / "out")
    assert_exit(result, 1)
    assert "line 1: payload.input[1].url: no such file" not in flat(result)  # line 2 sinks the file first
    assert "line 2: expected a JSON object, got an array" in flat(result)
    assert not (tmp_path / "out" / "results.jsonl").exists()


# --- talking to no server --------------------------------------------------------------------------


def test_a_refused_connection_is_one_line_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("batch", "list", "--server", url, "--api-key", "k")
    assert_exit(result, 1)
    assert flat(result) == f"error: cannot reach the server at {url}: connection refused"


def test_missing_server_or_key_is_named() -> None:
    no_server = cli("batch", "status", "b1", "--api-key", "k")
    assert_exit(no_server, 2)
    assert "give --server URL or set LIPSYNC_SERVER" in flat(no_server)
    no_key = cli("batch", "status", "b1", env={"LIPSYNC_SERVER": "http://127.0.0.1:9"})
    assert_exit(no_key, 2)
    assert "give --api-key or set SYNC_API_KEY" in flat(no_key)


def test_an_interrupted_run_goes_on_where_it_stopped(tmp_path: Path, clips: Clips) -> None:
    """Ctrl-C (SIGINT) once the first output is stored: exit 130; the same command then finishes the
    batch without rendering the finished line again."""
    copy_clips(clips, tmp_path)
    batch = write_lines(tmp_path / "b.jsonl", *(line(f"r{n}", "face.mp4", "speech.m4a") for n in range(4)))
    output = tmp_path / "out"
    command = [sys.executable, "-m", "lipsync_api", "batch", "run", str(batch), "-o", str(output)]
    env = os.environ | {"LIPSYNC_LEASE_SECONDS": "2", "LIPSYNC_WORKER_COUNT": "1"}
    stored = output / ".lipsync-data" / "files" / "outputs"
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(stored.rglob("*.mp4")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        first = {path: path.stat().st_mtime_ns for path in stored.rglob("*.mp4")}
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "run the same command again to go on" in " ".join(err.split())
    assert not (output / "results.jsonl").exists()
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert "continuing batch" in resumed.stderr
    assert [entry["request_id"] for entry in results_lines(output)] == ["r0", "r1", "r2", "r3"]
    assert sorted(path.name for path in output.glob("*.mp4")) == ["r0.mp4", "r1.mp4", "r2.mp4", "r3.mp4"]
    assert {path: path.stat().st_mtime_ns for path in first} == first  # not rendered again
