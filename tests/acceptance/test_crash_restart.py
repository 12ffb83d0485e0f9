"""Acceptance: SIGKILL the real server in the middle of a batch, start it again, and the batch ends right.

A real ``python -m lipsync_api serve`` (real engine, SQLite in a temporary data folder, one worker, a
3-second lease) runs a six-line batch of short real clips. The media server holds the third line's video
download half-sent, so that line is certainly PROCESSING when the server is killed with SIGKILL after two
lines have completed. The webhook receiver answers 500 to everything until the restart, so deliveries pile
up in the outbox. The server then starts again on the same data folder (another port), the receiver
switches to 200, and the test checks: the batch COMPLETED; its results file has exactly one line per input
line, in input order, each with a real mp4; each generation has exactly one output file and no temp file
or work folder is left; every expected webhook arrived, signed, exactly once per ``Sync-Webhook-Id``; and
the killed line ran again. A kill cannot be aimed at the moment a file is being written to storage, so
that case is staged: before the restart, the held line's output folder gets the stale temp file such a kill
leaves, and the restarted server must remove it. Generous timeouts, no timing assertions.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from lipsync_api.engine.media import probe
from tests.support.acceptance import (
    SECRET_LINE,
    Attempt,
    Receiver,
    serve_in_thread,
    stop_http_server,
    wait_for,
    webhook_receiver,
)
from tests.support.real_media import require_shared_media, trim_media
from tests.support.server import running_server

pytestmark = [pytest.mark.media, pytest.mark.slow]

KEY = "lsk_acceptance_crash_restart_0123456789"
CLIP_SECONDS = 1.0
CLIP_MAX_SIDE = 256
LINES = [f"line_{number:03d}" for number in range(1, 7)]
HELD_LINE = LINES[2]  # its video download is held until the server has been killed
READY_TIMEOUT = 90.0
PHASE_TIMEOUT = 120.0
BATCH_TIMEOUT = 240.0
# A delivery in flight at the kill keeps its outbox lease (DeliveryPolicy.lease_seconds, 120 s) first.
WEBHOOK_TIMEOUT = 300.0
TERMINAL_BATCH = {"COMPLETED", "FAILED", "CANCELED", "CANCELLED"}
SERVER_ENV = {
    "LIPSYNC_FETCH_ALLOW_PRIVATE_ADDRESSES": "true",
    "LIPSYNC_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
    "LIPSYNC_WORKER_COUNT": "1",
    "LIPSYNC_LEASE_SECONDS": "3",
    "LIPSYNC_WEBHOOK_RETRY_BASE_SECONDS": "0.5",
    "LIPSYNC_WEBHOOK_RETRY_MAX_SECONDS": "2",
    "LIPSYNC_WEBHOOK_MAX_ATTEMPTS": "50",  # refused for as long as phase 1 lasts, never given up
    "LIPSYNC_SHUTDOWN_GRACE_SECONDS": "2",
}


# --------------------------------------------------------------------------- media server


@dataclass
class Media:
    """Serves the clips; the first GET of ``held_url`` sends half the video, then waits for ``release``."""

    base: str = ""
    video: str = ""
    held_video: str = ""
    audio: str = ""
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    held_requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Media]:
    clips = require_shared_media()
    folder = tmp_path_factory.mktemp("media")
    face = trim_media(clips / "vrt_face3.mp4", folder / "face.mp4", CLIP_SECONDS, max_side=CLIP_MAX_SIDE)
    trim_media(clips / "sadtalker_RD_Radio31_000_en.wav", folder / "speech.m4a", CLIP_SECONDS)
    state = Media()
    video_bytes = face.read_bytes()

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self) -> None:
            if self.path != "/held/face.mp4":
                super().do_GET()
                return
            with state.lock:
                state.held_requests += 1
                first = state.held_requests == 1
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(video_bytes)))
            self.end_headers()
            if not first:
                self.wfile.write(video_bytes)
                return
            self.wfile.write(video_bytes[: len(video_bytes) // 2])  # a partial download lands in the work dir
            self.wfile.flush()
            state.held.set()
            state.release.wait(PHASE_TIMEOUT + READY_TIMEOUT)
            self.close_connection = True  # never sends the rest: that attempt's server is gone by now

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = serve_in_thread(server)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    state.video, state.held_video = f"{state.base}/face.mp4", f"{state.base}/held/face.mp4"
    state.audio = f"{state.base}/speech.m4a"
    try:
        yield state
    finally:
        state.release.set()
        stop_http_server(server, thread)


# --------------------------------------------------------------------------- webhook receiver


def refuse_all(_attempts: list[Attempt], _signature_ok: bool) -> int:
    return 500


def accept_signed(_attempts: list[Attempt], signature_ok: bool) -> int:
    return 200 if signature_ok else 500


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """Answers 500 to everything until the scenario switches it to ``accept_signed``."""
    with webhook_receiver(Receiver(refuse_all)) as running:
        yield running


# --------------------------------------------------------------------------- the scenario


@dataclass
class CrashRun:
    """What the scenario left: the restarted server, the batch as it ended, its lines, the data folder."""

    base: str
    data: Path
    batch: dict[str, Any]
    generations: dict[str, dict[str, Any]]  # request_id -> Generation object after the restart
    held_id: str
    logs: list[Path]

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"== {log.name}\n{log.read_text(errors='replace')[-chars:]}" for log in self.logs)


def batch_file(media: Media, receiver: Receiver) -> bytes:
    def line(request_id: str) -> str:
        video = media.held_video if request_id == HELD_LINE else media.video
        payload = {
            "model": "lipsync-2",
            "input": [{"type": "video", "url": video}, {"type": "audio", "url": media.audio}],
            "webhookUrl": f"{receiver.url}/generation/{request_id}",
        }
        return json.dumps({"request_id": request_id, "endpoint": "/v2/generate", "payload": payload})

    return "".join(line(request_id) + "\n" for request_id in LINES).encode()


def by_request_id(api: httpx.Client, batch_id: str) -> dict[str, dict[str, Any]]:
    response = api.get("/v2/generations")
    assert response.status_code == 200, response.text[:500]
    return {g["requestId"]: g for g in response.json() if g.get("batchId") == batch_id}


def ready_to_kill(
    api: httpx.Client, batch_id: str, media: Media, receiver: Receiver
) -> dict[str, Any] | None:
    """The batch's lines once the first server can be killed mid-batch, else None.

    That is: two lines COMPLETED, their webhooks refused at least once (so they wait in the outbox for a
    retry), and the held line PROCESSING (its video download half-sent).
    """
    if not media.held.is_set():
        return None
    lines = by_request_id(api, batch_id)
    completed = [request_id for request_id, g in lines.items() if g["status"] == "COMPLETED"]
    refused = {attempt.path for attempt in receiver.snapshot()}
    held = lines.get(HELD_LINE)
    if len(completed) < 2 or held is None or held["status"] != "PROCESSING":
        return None
    return lines if all(f"/hooks/generation/{request_id}" in refused for request_id in completed) else None


def plant_interrupted_write(files: Path, generation_id: str) -> Path:
    """The temp file a kill inside ``put_file`` leaves (storage/local.py names it ".<name>.<random>.tmp").

    A real SIGKILL cannot be aimed at that short window, so the test makes one: the held line's output folder
    gets a half-written temp file last touched two hours ago, as if the first server died mid-write.
    """
    organizations = [folder for folder in (files / "outputs").iterdir() if folder.is_dir()]
    assert len(organizations) == 1, organizations
    temp = organizations[0] / generation_id / ".output.mp4.k1lled.tmp"
    temp.parent.mkdir(parents=True)
    temp.write_bytes(b"\0" * 1000)
    stale = time.time() - 2 * 3600
    os.utime(temp, (stale, stale))
    return temp


@pytest.fixture(scope="module")
def crash_run(
    tmp_path_factory: pytest.TempPathFactory, media: Media, receiver: Receiver
) -> Iterator[CrashRun]:
    root = tmp_path_factory.mktemp("crash")
    logs = [root / "first.log", root / "second.log"]
    with running_server(root, KEY, SERVER_ENV, READY_TIMEOUT, log_name=logs[0].name) as first:
        found = wait_for(
            "the webhook secret on the first start's stdout", lambda: SECRET_LINE.search(first.log_text()), 30
        )
        receiver.secret = found.group(1)
        with httpx.Client(base_url=first.base, headers={"x-api-key": KEY}, timeout=60) as api:
            files = {"input": ("batch.jsonl", batch_file(media, receiver), "application/jsonl")}
            data = {"webhook_url": f"{receiver.url}/batch", "dry_run": "false"}
            created = api.post("/v2/batch", files=files, data=data)
            assert created.status_code == 201, created.text[:1000]
            batch_id = created.json()["id"]
            before = wait_for(
                "two COMPLETED lines with refused webhooks and the held line PROCESSING",
                lambda: ready_to_kill(api, batch_id, media, receiver),
                PHASE_TIMEOUT,
            )
        first.process.kill()  # SIGKILL: no shutdown, no cleanup, leases and outbox rows left as they are
        first.process.wait(timeout=30)
    media.release.set()
    assert all(attempt.answered == 500 for attempt in receiver.snapshot())
    plant_interrupted_write(root / "data" / "files", before[HELD_LINE]["id"])

    with running_server(root, KEY, SERVER_ENV, READY_TIMEOUT, log_name=logs[1].name) as second:
        receiver.answer = accept_signed
        with httpx.Client(base_url=second.base, headers={"x-api-key": KEY}, timeout=60) as api:

            def ended() -> dict[str, Any] | None:
                batch: dict[str, Any] = api.get(f"/v2/batch/{batch_id}").json()
                return batch if batch.get("status") in TERMINAL_BATCH else None

            batch = wait_for(f"batch {batch_id} to end after the restart", ended, BATCH_TIMEOUT, interval=1.0)
            generations = by_request_id(api, batch_id)
        yield CrashRun(second.base, root / "data", batch, generations, before[HELD_LINE]["id"], logs)


# --------------------------------------------------------------------------- the checks


def test_batch_completes_after_the_restart(crash_run: CrashRun) -> None:
    batch = crash_run.batch
    assert batch["status"] == "COMPLETED", crash_run.log_tail()
    metrics = batch["metrics"]
    assert metrics["total_generations"] == len(LINES)
    assert metrics["success_count"] == len(LINES), (metrics, crash_run.log_tail())
    assert metrics["failed_count"] == 0 and metrics["pending_count"] == 0
    assert batch["outputUrl"]


def test_results_file_has_one_line_per_input_line(crash_run: CrashRun, tmp_path: Path) -> None:
    response = httpx.get(crash_run.batch["outputUrl"], timeout=60)  # no API key: the URL is signed
    assert response.status_code == 200, response.text[:500]
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    assert [line["request_id"] for line in lines] == LINES
    responses = [line["response"] for line in lines]
    assert [r["id"] for r in responses] == [crash_run.generations[request_id]["id"] for request_id in LINES]
    assert all(r["status"] == "COMPLETED" and not r["error_code"] for r in responses), responses
    urls = [r["outputUrl"] for r in responses]
    assert all(urls) and len(set(urls)) == len(urls), urls
    for number, url in enumerate(urls):
        video = httpx.get(url, timeout=60)
        assert video.status_code == 200, (url, video.text[:300])
        path = tmp_path / f"line{number}.mp4"
        path.write_bytes(video.content)
        info = probe(path)
        assert info.video is not None and info.video.codec == "h264"
        assert info.audio is not None and info.audio.codec == "aac"


def test_one_output_file_per_generation_and_no_temp_files(crash_run: CrashRun) -> None:
    files = crash_run.data / "files"
    folders = {folder.name: folder for folder in files.glob("outputs/*/*") if folder.is_dir()}
    ids = {g["id"] for g in crash_run.generations.values()}
    assert set(folders) == ids
    for folder in folders.values():
        assert [path.suffix for path in folder.iterdir()] == [".mp4"], sorted(folder.iterdir())
    # storage/local.py writes ".<name>.<random>.tmp" beside the target, then renames it
    strays = [p for p in files.rglob("*") if p.is_file() and (p.name.startswith(".") or p.suffix == ".tmp")]
    assert not strays, strays


def test_work_folder_has_nothing_left_of_finished_generations(crash_run: CrashRun) -> None:
    work = crash_run.data / "work"
    ids = {g["id"] for g in crash_run.generations.values()}
    left = sorted(p.relative_to(work).as_posix() for p in work.rglob("*")) if work.exists() else []
    assert not [entry for entry in left if entry.split("/")[0] in ids], left


def test_killed_generation_ran_again(crash_run: CrashRun) -> None:
    held = crash_run.generations[HELD_LINE]
    assert held["id"] == crash_run.held_id
    assert held["status"] == "COMPLETED"
    assert held["attempts"] >= 2, held


def test_every_webhook_delivered_once_and_signed(crash_run: CrashRun, receiver: Receiver) -> None:
    expected = {f"/hooks/generation/{request_id}" for request_id in LINES} | {"/hooks/batch"}

    def all_accepted() -> list[Attempt] | None:
        accepted = receiver.accepted()
        return accepted if {attempt.path for attempt in accepted} >= expected else None

    wait_for("a 200 for every expected webhook", all_accepted, WEBHOOK_TIMEOUT, interval=1.0)
    time.sleep(3)  # longer than the longest retry wait (2 s): a duplicate would have come by now
    attempts = receiver.snapshot()
    assert all(attempt.signature_ok for attempt in attempts), "a Sync-Signature did not verify"
    assert all(attempt.webhook_id for attempt in attempts), "an attempt without Sync-Webhook-Id"
    assert {attempt.path for attempt in attempts} == expected
    for path in expected:
        ids = {attempt.webhook_id for attempt in attempts if attempt.path == path}
        assert len(ids) == 1, (path, ids)  # one delivery per event, however often it was retried
        accepted = [attempt for attempt in attempts if attempt.path == path and attempt.answered == 200]
        assert len(accepted) == 1, (path, len(accepted))
        payload = json.loads(accepted[0].body)
        if path == "/hooks/batch":
            assert payload["id"] == crash_run.batch["id"] and payload["status"] == "COMPLETED", payload
            assert payload["metrics"]["success_count"] == len(LINES), payload
        else:
            request_id = path.rsplit("/", 1)[1]
            assert payload["id"] == crash_run.generations[request_id]["id"], payload
            assert payload["status"] == "COMPLETED", payload
