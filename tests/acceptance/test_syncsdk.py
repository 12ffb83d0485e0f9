"""Acceptance: the real server as a subprocess, driven by the official ``syncsdk`` 0.3.0 client, unmodified.

One server (real engine, SQLite in a temporary data folder, one worker) for the module; a local media
server on 127.0.0.1 hands out two short real clips and a synthetic video without a face; a local webhook
receiver verifies ``Sync-Signature`` with the organization's webhook secret (printed by the server's first
start) and refuses the first two attempts with 500. Every step waits with generous timeouts and asserts
no timings.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sync import Sync
from sync.common import Audio, Generation, Video
from sync.core.pydantic_utilities import parse_obj_as

from lipsync_api.engine.media import probe
from tests.support.acceptance import (
    SECRET_LINE,
    Attempt,
    Receiver,
    serving_folder,
    wait_for,
    webhook_receiver,
)
from tests.support.media_factory import write_video
from tests.support.real_media import require_shared_media, trim_media
from tests.support.server import running_server

pytestmark = [pytest.mark.media, pytest.mark.slow]

KEY = "lsk_acceptance_syncsdk_key_0123456789"
CLIP_SECONDS = 1.5
READY_TIMEOUT = 90.0
GENERATION_TIMEOUT = 120.0
BATCH_TIMEOUT = 240.0
WEBHOOK_TIMEOUT = 180.0  # three attempts; the sender's backoff (base 10 s, doubling) is not a setting
TERMINAL_GENERATION = {"COMPLETED", "FAILED", "REJECTED", "CANCELED", "CANCELLED"}
TERMINAL_BATCH = {"COMPLETED", "FAILED", "CANCELED", "CANCELLED"}


# --------------------------------------------------------------------------- media server


@dataclass
class Media:
    base: str
    video: str
    audio: str
    missing_audio: str
    no_face: str


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Media]:
    """~1.5 s of a real talking head and of real speech, served over HTTP on 127.0.0.1 (404 for the rest)."""
    clips = require_shared_media()
    folder = tmp_path_factory.mktemp("media")
    trim_media(clips / "vrt_face3.mp4", folder / "face.mp4", CLIP_SECONDS)
    trim_media(clips / "sadtalker_RD_Radio31_000_en.wav", folder / "speech.m4a", CLIP_SECONDS)
    write_video(folder / "no-face.mp4", frames=round(25 * CLIP_SECONDS), audio_seconds=CLIP_SECONDS)  # shapes
    with serving_folder(folder) as base:
        yield Media(
            base,
            f"{base}/face.mp4",
            f"{base}/speech.m4a",
            f"{base}/no-such-speech.m4a",
            f"{base}/no-face.mp4",
        )


# --------------------------------------------------------------------------- webhook receiver


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """Answers 500 to the first two attempts, then 200 (to well-signed ones); records every attempt."""

    def answer(attempts: list[Attempt], signature_ok: bool) -> int:
        return 500 if len(attempts) < 2 or not signature_ok else 200

    with webhook_receiver(Receiver(answer), "/hooks/batch") as running:
        yield running


# --------------------------------------------------------------------------- the real server


@dataclass
class Server:
    base: str
    log: Path
    webhook_secret: str

    def client(self) -> Sync:
        return Sync(base_url=self.base, api_key=KEY, timeout=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, media: Media, receiver: Receiver) -> Iterator[Server]:
    """``python -m lipsync_api serve`` on a free loopback port and a fresh data folder, stopped by its PID."""
    env = {
        "LIPSYNC_FETCH_ALLOW_PRIVATE_ADDRESSES": "true",
        "LIPSYNC_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
        "LIPSYNC_WORKER_COUNT": "1",
        "LIPSYNC_WEBHOOK_RETRY_BASE_SECONDS": "1",
    }
    with running_server(tmp_path_factory.mktemp("server"), KEY, env, READY_TIMEOUT) as running:
        found = wait_for(
            "the webhook secret line on the server's stdout",
            lambda: SECRET_LINE.search(running.log_text()),
            30,
        )
        receiver.secret = found.group(1)
        yield Server(running.base, running.log, found.group(1))


@pytest.fixture(scope="module")
def sdk(server: Server) -> Sync:
    return server.client()


def log_tail(server: Server, chars: int = 4000) -> str:
    return server.log.read_text(errors="replace")[-chars:]


# --------------------------------------------------------------------------- generations


@pytest.fixture(scope="module")
def created(sdk: Sync, media: Media) -> Generation:
    return sdk.generations.create(model="lipsync-2", input=[Video(url=media.video), Audio(url=media.audio)])


@pytest.fixture(scope="module")
def finished(sdk: Sync, created: Generation, server: Server) -> Generation:
    def done() -> Generation | None:
        generation = sdk.generations.get(id=created.id)
        return generation if generation.status in TERMINAL_GENERATION else None

    generation = wait_for(f"generation {created.id} to end", done, GENERATION_TIMEOUT)
    assert generation.status == "COMPLETED", (generation.error, generation.error_code, log_tail(server))
    return generation


def test_models_list_contains_lipsync_2(sdk: Sync) -> None:
    models = sdk.models.list()
    assert "lipsync-2" in [model.id for model in models]


def test_generation_created_pending(created: Generation) -> None:
    assert created.id
    assert created.status == "PENDING"
    assert created.model == "lipsync-2"


def test_generation_completes_and_output_downloads_without_key(finished: Generation, tmp_path: Path) -> None:
    assert finished.output_url
    response = httpx.get(finished.output_url, timeout=60)  # no API key: the signed URL is enough
    assert response.status_code == 200, response.text[:500]
    path = tmp_path / "out.mp4"
    path.write_bytes(response.content)
    info = probe(path)
    assert info.video is not None and info.video.codec == "h264"
    assert info.audio is not None and info.audio.codec == "aac"


def test_generations_list_contains_it(sdk: Sync, finished: Generation) -> None:
    assert finished.id in [generation.id for generation in sdk.generations.list()]
    by_id = sdk.generations.list(ids=[finished.id])
    assert [generation.id for generation in by_id] == [finished.id]
    assert finished.id in [generation.id for generation in sdk.generations.list(status=["COMPLETED"])]


def test_generations_estimate_cost(sdk: Sync, media: Media) -> None:
    estimates = sdk.generations.estimate_cost(
        model="lipsync-2", input=[Video(url=media.video), Audio(url=media.audio)]
    )
    assert len(estimates) == 1
    frames = estimates[0].estimated_frame_count  # the 25 fps clip and its speech, both ~CLIP_SECONDS long
    assert 0 < frames <= round(25 * CLIP_SECONDS) + 1
    assert estimates[0].estimated_generation_cost == pytest.approx(frames / 25 * 0.05, abs=1e-4)


# --------------------------------------------------------------------------- batches


BATCH_LINES = ["good_001", "missing_002", "noface_003"]


def batch_file(media: Media) -> bytes:
    def line(request_id: str, audio: str, video: str = media.video) -> str:
        payload = {
            "model": "lipsync-2",
            "input": [{"type": "video", "url": video}, {"type": "audio", "url": audio}],
        }
        return json.dumps({"request_id": request_id, "endpoint": "/v2/generate", "payload": payload})

    lines = [
        line("good_001", media.audio),
        line("missing_002", media.missing_audio),
        line("noface_003", media.audio, video=media.no_face),  # fetched fine; no face in any frame
    ]
    return "".join(text + "\n" for text in lines).encode()


def test_batch_dry_run_validates(sdk: Sync, media: Media) -> None:
    answer = sdk.batch.create(input=("batch.jsonl", batch_file(media), "application/jsonl"), dry_run=True)
    assert answer.status == "VALIDATED"
    extra = answer.model_dump(by_alias=True)
    assert extra.get("total_generations") == 3, extra
    assert extra.get("estimatedFrameCount"), extra  # lines 1 and 3; line 2's audio is missing
    assert extra["warnings"][-1] == "estimates cover 2 of 3 lines", extra
    assert extra["warnings"][0].startswith("line 2: input[1] (audio): could not fetch"), extra


@pytest.fixture(scope="module")
def batch_started(sdk: Sync, media: Media, receiver: Receiver) -> tuple[Any, dt.datetime]:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    created = sdk.batch.create(
        input=("batch.jsonl", batch_file(media), "application/jsonl"),
        webhook_url=receiver.url,
        dry_run=False,
    )
    return created, before


@pytest.fixture(scope="module")
def batch_done(sdk: Sync, batch_started: tuple[Any, dt.datetime], server: Server) -> Any:
    created, _ = batch_started

    def done() -> Any:
        batch = sdk.batch.get(id=created.id)
        return batch if batch.status in TERMINAL_BATCH else None

    return wait_for(f"batch {created.id} to end", done, BATCH_TIMEOUT, interval=1.0)


def test_batch_created(batch_started: tuple[Any, dt.datetime], receiver: Receiver) -> None:
    created, _ = batch_started
    assert created.id
    assert created.status in {"PENDING", "JOBS_CREATED", "PROCESSING"}
    assert created.metrics.total_generations == 3
    assert created.webhook_url == receiver.url


def test_batch_completes_with_one_success_two_failures(batch_done: Any, server: Server) -> None:
    assert batch_done.status == "COMPLETED", log_tail(server)
    assert batch_done.metrics.total_generations == 3
    assert batch_done.metrics.success_count == 1
    assert batch_done.metrics.failed_count == 2  # REJECTED counts as failed
    assert batch_done.metrics.pending_count == 0
    assert batch_done.output_url


def test_batch_results_file_in_input_order(batch_done: Any, tmp_path: Path) -> None:
    response = httpx.get(batch_done.output_url, timeout=60)  # plain HTTP, no API key
    assert response.status_code == 200, response.text[:500]
    lines = [json.loads(line) for line in response.text.splitlines() if line.strip()]
    assert [line["request_id"] for line in lines] == BATCH_LINES
    generations = [parse_obj_as(Generation, line["response"]) for line in lines]
    good, bad, no_face = generations
    assert good.status == "COMPLETED" and good.output_url and not good.error_code
    assert bad.status == "FAILED" and bad.error_code and bad.error
    assert no_face.status == "REJECTED" and no_face.error and not no_face.output_url, no_face
    assert no_face.error_code == "generation_no_face_detected"
    for raw in (line["response"] for line in lines):
        assert {"id", "status", "error_code", "outputUrl", "createdAt", "model", "input"} <= raw.keys()
    video = httpx.get(good.output_url, timeout=60)
    assert video.status_code == 200
    (tmp_path / "line1.mp4").write_bytes(video.content)
    info = probe(tmp_path / "line1.mp4")
    assert info.video is not None and info.video.codec == "h264"
    assert info.audio is not None and info.audio.codec == "aac"


def test_batch_list_with_filters(sdk: Sync, batch_done: Any, batch_started: tuple[Any, dt.datetime]) -> None:
    _, before = batch_started
    assert batch_done.id in [batch.id for batch in sdk.batch.list()]
    assert batch_done.id in [batch.id for batch in sdk.batch.list(status="COMPLETED")]
    assert batch_done.id not in [batch.id for batch in sdk.batch.list(status="PROCESSING")]
    assert batch_done.id in [batch.id for batch in sdk.batch.list(created_after=before)]
    assert batch_done.id not in [batch.id for batch in sdk.batch.list(created_before=before)]


def test_batch_webhook_signed_and_retried_until_accepted(
    batch_done: Any, receiver: Receiver, server: Server
) -> None:
    attempts = wait_for(
        "the third webhook attempt",
        lambda: got if len(got := receiver.snapshot()) >= 3 else None,
        WEBHOOK_TIMEOUT,
        interval=1.0,
    )
    first_three = attempts[:3]
    assert [attempt.answered for attempt in first_three] == [500, 500, 200]
    assert all(attempt.signature_ok for attempt in first_three), "a Sync-Signature did not verify"
    ids = {attempt.webhook_id for attempt in first_three}
    assert len(ids) == 1 and None not in ids, ids  # one delivery, retried under the same Sync-Webhook-Id
    payload = json.loads(first_three[2].body)
    assert payload["id"] == batch_done.id
    assert payload["status"] == "COMPLETED"
    assert payload["metrics"]["success_count"] == 1 and payload["metrics"]["failed_count"] == 2
    time.sleep(2)  # nothing more once a 2xx was given
    assert len(receiver.snapshot()) == 3
