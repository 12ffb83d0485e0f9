"""``POST /v2/generate`` as a multipart upload: files become assets, assetIds are checked, limits hold.

The app runs with a small ``upload_max_bytes`` so the 413 needs little data; the media are tiny real
clips from the media factory (the fake engine does not read them). The official SDK against a real server
with the real engine is in ``test_upload_real_engine``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sync import AsyncSync

from tests.integration.api.conftest import BATCH_MAX_BYTES, BOOTSTRAP_KEY, Api, api_settings, running_api
from tests.support.media_factory import tone, write_audio, write_video

pytestmark = pytest.mark.asyncio

UPLOAD_LIMIT = 256 * 1024
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
AUDIO_URL = "https://media.example.com/a.wav"


@pytest_asyncio.fixture
async def api(tmp_path: Path, database_url: str) -> AsyncIterator[Api]:
    """As the shared ``api`` fixture, with a small upload limit."""
    settings = api_settings(
        tmp_path, database_url, batch_max_bytes=BATCH_MAX_BYTES, upload_max_bytes=UPLOAD_LIMIT
    )
    async with running_api(settings) as running:
        yield running


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny h264 clip and a short wav tone, both well under the upload limit."""
    folder = tmp_path_factory.mktemp("upload-media")
    video = write_video(folder / "clip.mp4", frames=10)
    audio = write_audio(folder / "tone.wav", tone(0.5, 16000), 16000)
    assert video.stat().st_size < UPLOAD_LIMIT and audio.stat().st_size < UPLOAD_LIMIT
    return video, audio


def files_of(video: Path | None = None, audio: Path | None = None) -> dict[str, tuple[str, bytes, str]]:
    found = {"video": (video, "video/mp4"), "audio": (audio, "audio/wav")}
    return {name: (path.name, path.read_bytes(), kind) for name, (path, kind) in found.items() if path}


async def upload(api: Api, data: dict[str, Any], files: Any, **kwargs: Any) -> httpx.Response:
    return await api.client.post("/v2/generate", data=data, files=files, **kwargs)


def temp_files(api: Api) -> list[Path]:
    folder = api.state.settings.data_dir / "tmp"
    return list(folder.iterdir()) if folder.exists() else []


async def asset_count(api: Api) -> int:
    return len(await api.state.store.assets.list_older_than(FAR_FUTURE))


def video_part_head(boundary: str) -> bytes:
    """The start of a ``video`` file part, for hand-made bodies."""
    disposition = 'Content-Disposition: form-data; name="video"; filename="v.mp4"'
    return f"--{boundary}\r\n{disposition}\r\n\r\n".encode()


def messages(response: httpx.Response) -> list[str]:
    body = response.json()
    assert body["statusCode"] == response.status_code
    return body["message"] if isinstance(body["message"], list) else [body["message"]]


# --------------------------------------------------------------------------- accepted uploads


async def test_uploaded_files_become_the_generations_assets(api: Api, media: tuple[Path, Path]) -> None:
    video, audio = media
    fields = {
        "model": "lipsync-2",
        "options": json.dumps({"sync_mode": "loop", "temperature": 0.3}),
        "webhookUrl": "https://hooks.example.com/done",
        "outputFileName": "clip_01",
    }
    response = await upload(api, fields, files_of(video, audio))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["options"] == {"sync_mode": "loop", "temperature": 0.3}
    assert body["webhookUrl"] == "https://hooks.example.com/done"
    assert [item["type"] for item in body["input"]] == ["video", "audio"]
    assert all(set(item) == {"type", "assetId"} for item in body["input"])
    org = await api.state.store.organizations.find_by_key(BOOTSTRAP_KEY)
    assert org is not None
    for item, source in zip(body["input"], (video, audio), strict=True):
        asset = await api.state.store.assets.get_for_organization(org.id, item["assetId"])
        assert asset is not None and asset.kind == item["type"]
        assert (asset.size_bytes, asset.original_filename) == (source.stat().st_size, source.name)
        assert asset.storage_key == f"assets/{asset.id}/{asset.kind}"
        assert await api.state.storage.read_bytes(asset.storage_key) == source.read_bytes()
    assert temp_files(api) == []


async def test_input_items_are_kept_before_the_uploaded_files(api: Api, media: tuple[Path, Path]) -> None:
    fields = {"model": "lipsync-2", "input": json.dumps([{"type": "audio", "url": AUDIO_URL}])}
    response = await upload(api, fields, files_of(video=media[0]))
    assert response.status_code == 201, response.text
    first, second = response.json()["input"]
    assert first == {"type": "audio", "url": AUDIO_URL}
    assert second["type"] == "video" and set(second) == {"type", "assetId"}


async def test_an_uploaded_asset_can_be_named_again_in_json(api: Api, media: tuple[Path, Path]) -> None:
    created = (await upload(api, {"model": "lipsync-2"}, files_of(*media))).json()
    video_id = created["input"][0]["assetId"]
    again = {
        "model": "lipsync-2",
        "input": [{"type": "video", "assetId": video_id}, {"type": "audio", "url": AUDIO_URL}],
    }
    response = await api.client.post("/v2/generate", json=again)
    assert response.status_code == 201 and response.json()["input"][0] == {
        "type": "video",
        "assetId": video_id,
    }


async def test_the_official_async_client_uploads_files(api: Api, media: tuple[Path, Path]) -> None:
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        client = AsyncSync(base_url="http://test", api_key=BOOTSTRAP_KEY, httpx_client=http)
        with media[0].open("rb") as video, media[1].open("rb") as audio:
            generation = await client.generations.create_with_files(
                model="lipsync-2", video=video, audio=audio, webhook_url="https://hooks.example.com/x"
            )
    assert (
        generation.status in ("PENDING", "PROCESSING")
        and generation.webhook_url == "https://hooks.example.com/x"
    )
    assert [(item.type, bool(item.asset_id)) for item in generation.input] == [
        ("video", True),
        ("audio", True),
    ]


async def test_idempotency_key_recognises_the_same_upload(api: Api, media: tuple[Path, Path]) -> None:
    headers = {"Idempotency-Key": "upload-42"}
    first = await upload(api, {"model": "lipsync-2"}, files_of(*media), headers=headers)
    again = await upload(api, {"model": "lipsync-2"}, files_of(*media), headers=headers)
    assert first.status_code == 201 and again.status_code == 201
    assert (again.json()["id"], again.json()["input"]) == (first.json()["id"], first.json()["input"])
    assert await asset_count(api) == 2  # the retry's copies are removed
    other_audio = {**files_of(*media), "audio": ("other.wav", media[1].read_bytes() + b"\0", "audio/wav")}
    reused = await upload(api, {"model": "lipsync-2"}, other_audio, headers=headers)
    assert reused.status_code == 409 and reused.json()["errorCode"] == "IDEMPOTENCY_KEY_REUSED"
    assert await asset_count(api) == 2 and temp_files(api) == []


# --------------------------------------------------------------------------- refused uploads


async def test_missing_model_and_video_are_named(api: Api, media: tuple[Path, Path]) -> None:
    response = await upload(api, {"webhookUrl": ""}, files_of(audio=media[1]))
    assert response.status_code == 400
    found = messages(response)
    assert "model: required" in found and any(m.startswith("video: required") for m in found)
    assert await asset_count(api) == 0 and temp_files(api) == []


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"input": "[{not json"}, "input: not valid JSON"),
        ({"input": json.dumps({"type": "audio", "url": AUDIO_URL})}, "input: must be a JSON array"),
        ({"options": "{'sync_mode': 'loop'}"}, "options: not valid JSON"),
        ({"options": "[1]"}, "options: must be a JSON object"),
        ({"segments": "NaN"}, "segments: not valid JSON"),
        ({"model": ["lipsync-2", "lipsync-1.9.0-beta"]}, "model: given more than once"),
    ],
)
async def test_bad_json_fields_are_named(
    api: Api, media: tuple[Path, Path], fields: dict[str, Any], expected: str
) -> None:
    response = await upload(api, {"model": "lipsync-2", **fields}, files_of(*media))
    assert response.status_code == 400
    assert any(m.startswith(expected) for m in messages(response)), messages(response)
    assert await asset_count(api) == 0 and temp_files(api) == []


async def test_a_video_file_and_a_video_input_conflict(api: Api, media: tuple[Path, Path]) -> None:
    both = json.dumps([{"type": "video", "url": "https://media.example.com/v.mp4"}])
    response = await upload(api, {"model": "lipsync-2", "input": both}, files_of(*media))
    assert response.status_code == 400
    assert messages(response) == [
        "video: a video file was uploaded and input[0] is a video too; give one or the other"
    ]


async def test_invalid_request_stores_nothing(api: Api, media: tuple[Path, Path]) -> None:
    response = await upload(api, {"model": "lipsync-2", "outputFileName": "bad name!"}, files_of(*media))
    assert response.status_code == 400 and any(m.startswith("outputFileName:") for m in messages(response))
    assert await asset_count(api) == 0 and temp_files(api) == []
    assert list((api.state.storage.root / "assets").glob("*")) == []


async def test_an_empty_file_is_refused(api: Api, media: tuple[Path, Path]) -> None:
    files = {**files_of(*media), "video": ("empty.mp4", b"", "video/mp4")}
    response = await upload(api, {"model": "lipsync-2"}, files)
    assert response.status_code == 400 and messages(response) == ["video: the uploaded file is empty"]


async def test_an_oversize_upload_is_413_without_reading_on(api: Api) -> None:
    sent = 0
    boundary = "b0undary"

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nlipsync-2\r\n'.encode()
        yield video_part_head(boundary)
        for _ in range(2 * UPLOAD_LIMIT // 1024):
            sent += 1024
            yield b"x" * 1024
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    response = await api.client.post("/v2/generate", content=body(), headers=headers)
    assert response.status_code == 413
    assert response.json() == {
        "statusCode": 413,
        "message": f"video: the file is larger than the {UPLOAD_LIMIT} bytes allowed",
        "errorCode": "upload_too_large",
    }
    assert sent <= UPLOAD_LIMIT + 2 * 1024
    assert await asset_count(api) == 0 and temp_files(api) == []


async def test_a_body_that_breaks_off_leaves_no_temporary_file(api: Api) -> None:
    boundary = "b0undary"

    async def body() -> AsyncIterator[bytes]:
        yield video_part_head(boundary)
        yield b"x" * 4096
        raise ConnectionError("client went away")

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    with pytest.raises(ConnectionError):
        await api.client.post("/v2/generate", content=body(), headers=headers)
    assert temp_files(api) == []
    truncated = f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nlipsync-2'
    response = await api.client.post("/v2/generate", content=truncated.encode(), headers=headers)
    assert response.status_code == 400 and "closing boundary" in response.json()["message"]


# --------------------------------------------------------------------------- assetId inputs


async def test_asset_ids_must_be_the_callers_and_of_the_right_kind(
    api: Api, media: tuple[Path, Path]
) -> None:
    created = (await upload(api, {"model": "lipsync-2"}, files_of(*media))).json()
    video_id, audio_id = (item["assetId"] for item in created["input"])
    other = {"x-api-key": await api.key_for("enterprise")}
    theirs = {
        "model": "lipsync-2",
        "input": [{"type": "video", "assetId": video_id}, {"type": "audio", "url": AUDIO_URL}],
    }
    response = await api.client.post("/v2/generate", json=theirs, headers=other)
    assert response.status_code == 400 and messages(response) == ["input[0].assetId: no such asset"]
    swapped = {
        "model": "lipsync-2",
        "input": [{"type": "video", "assetId": audio_id}, {"type": "audio", "assetId": video_id}],
    }
    response = await api.client.post("/v2/generate", json=swapped)
    assert response.status_code == 400
    assert messages(response) == [
        "input[0].assetId: names an audio asset, not a video one",
        "input[1].assetId: names a video asset, not an audio one",
    ]


async def test_a_batch_line_naming_another_organizations_asset_is_refused(
    api: Api, media: tuple[Path, Path]
) -> None:
    other = {"x-api-key": await api.key_for("enterprise")}
    created = (await upload(api, {"model": "lipsync-2"}, files_of(*media), headers=other)).json()
    video_id = created["input"][0]["assetId"]
    payload = {
        "model": "lipsync-2",
        "input": [{"type": "video", "assetId": video_id}, {"type": "audio", "url": AUDIO_URL}],
    }
    line = json.dumps({"request_id": "r1", "endpoint": "/v2/generate", "payload": payload})
    response = await api.client.post(
        "/v2/batch", files={"input": ("b.jsonl", line.encode(), "application/jsonl")}
    )
    assert response.status_code == 400 and response.json()["errorCode"] == "invalid_batch_file"
    assert response.json()["errors"] == [
        {"line": 1, "request_id": "r1", "field": "payload.input[0].assetId", "message": "no such asset"}
    ]
    mine = await api.client.post("/v2/batch", files={"input": ("b.jsonl", line.encode())}, headers=other)
    assert mine.status_code == 201, mine.text


async def test_the_openapi_document_describes_both_bodies(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    content = schema["paths"]["/v2/generate"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    form = content["multipart/form-data"]["schema"]["properties"]
    assert {"model", "video", "audio", "input", "options", "segments", "webhookUrl", "outputFileName"} <= set(
        form
    )
