"""``POST /v2/analyze/cost`` and the estimates of a batch dry run, with media on a real local host."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sync.common.types.estimated_generation_cost import EstimatedGenerationCost
from sync.core.pydantic_utilities import parse_obj_as

from lipsync_api.store.models import AssetKind
from tests.integration.api.conftest import BOOTSTRAP_KEY, Api, api_settings, running_api
from tests.support import media_factory as mf
from tests.support.media_server import MediaHost, media_host

pytestmark = pytest.mark.asyncio

PRICES = {"lipsync-2": 0.05, "lipsync-2-pro": 0.0833}  # sync-3 is served but has no price here


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaHost]:
    folder = tmp_path_factory.mktemp("cost-media")
    mf.write_video(folder / "face.mp4", frames=50, audio_seconds=2.0)  # 2 s at 25 fps
    mf.write_audio(folder / "long.wav", mf.tone(3.0, 16000), 16000)
    mf.write_audio(folder / "short.wav", mf.tone(1.0, 16000), 16000)
    (folder / "notes.txt").write_text("not media\n" * 50)
    with media_host(folder) as running:
        yield running


@pytest_asyncio.fixture
async def api(tmp_path: Path, database_url: str) -> AsyncIterator[Api]:
    """The app (no workers) allowed to fetch from 127.0.0.1, with this module's prices."""
    settings = api_settings(tmp_path, database_url, fetch_allow_private_addresses=True, model_prices=PRICES)
    async with running_api(settings, run_workers=False) as running:
        yield running


def body(host: MediaHost, audio: str = "long.wav", **extra: Any) -> dict[str, Any]:
    return {
        "model": "lipsync-2",
        "input": [
            {"type": "video", "url": host.url("r", "face.mp4")},
            {"type": "audio", "url": host.url("r", audio)},
        ],
        **extra,
    }


@pytest.mark.parametrize(
    ("audio", "extra", "frames", "cost"),
    [
        ("long.wav", {}, 50, 0.1),  # cut_off: the 2 s video
        ("short.wav", {}, 25, 0.05),  # cut_off: the 1 s audio
        ("long.wav", {"options": {"sync_mode": "loop"}}, 75, 0.15),
        ("short.wav", {"options": {"sync_mode": "silence"}}, 50, 0.1),
        ("long.wav", {"model": "lipsync-2-pro"}, 50, 0.1666),
    ],
)
async def test_estimate_cost(
    api: Api, host: MediaHost, audio: str, extra: dict[str, Any], frames: int, cost: float
) -> None:
    response = await api.client.post("/v2/analyze/cost", json=body(host, audio, **extra))
    assert response.status_code == 200, response.text
    assert response.json() == [{"estimatedFrameCount": frames, "estimatedGenerationCost": cost}]
    parsed = parse_obj_as(list[EstimatedGenerationCost], response.json())  # the SDK's own type
    assert parsed[0].estimated_frame_count == frames


async def test_segments_estimate_the_video_length(api: Api, host: MediaHost) -> None:
    request = body(host, "short.wav")
    request["input"][1]["refId"] = "a"
    request["segments"] = [{"startTime": 0.5, "endTime": 1.5, "audioInput": {"refId": "a"}}]
    response = await api.client.post("/v2/analyze/cost", json=request)
    assert response.json() == [{"estimatedFrameCount": 50, "estimatedGenerationCost": 0.1}]
    request["segments"] = [{"startTime": 0.5, "endTime": 5.0, "audioInput": {"refId": "a"}}]
    refused = await api.client.post("/v2/analyze/cost", json=request)
    assert refused.status_code == 400 and refused.json()["errorCode"] == "generation_invalid_segments"


async def test_the_video_is_probed_once_for_several_estimates(api: Api, host: MediaHost) -> None:
    host.clear()
    for audio in ("long.wav", "short.wav", "long.wav"):
        response = await api.client.post("/v2/analyze/cost", json=body(host, audio))
        assert response.status_code == 200
    # Each probe starts by asking for the first bytes; the cache answers the later estimates.
    starts = [s.path for s in host.served() if s.range is not None and s.range.startswith("bytes=0-")]
    assert sorted(starts) == ["/r/face.mp4", "/r/long.wav", "/r/short.wav"]


async def test_an_invalid_body_is_a_400_naming_every_problem(api: Api, host: MediaHost) -> None:
    response = await api.client.post("/v2/analyze/cost", json={"model": "lipsync-2", "input": []})
    assert response.status_code == 400
    assert response.json()["message"] == [
        "input: needs exactly one video input, got 0",
        "input: needs exactly one audio input, got 0 (several only together with segments)",
    ]
    not_object = await api.client.post("/v2/analyze/cost", json=[1, 2])
    assert not_object.status_code == 400
    not_json = await api.client.post("/v2/analyze/cost", content=b"{oops")
    assert not_json.status_code == 400 and not_json.json()["message"] == ["body: not valid JSON"]


async def test_an_unknown_or_unpriced_model_is_a_400(api: Api, host: MediaHost) -> None:
    unknown = await api.client.post("/v2/analyze/cost", json=body(host, model="nope-9"))
    assert unknown.status_code == 400 and unknown.json()["errorCode"] == "generation_unsupported_model"
    unpriced = await api.client.post("/v2/analyze/cost", json=body(host, model="sync-3"))
    assert unpriced.status_code == 400 and unpriced.json()["errorCode"] == "generation_unsupported_model"
    assert "no price is configured for model 'sync-3'" in unpriced.json()["message"]


async def test_media_that_cannot_be_fetched_is_a_400_naming_the_input(api: Api, host: MediaHost) -> None:
    response = await api.client.post("/v2/analyze/cost", json=body(host, "absent.wav"))
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": 400,
        "message": f"input[1] (audio): could not fetch {host.url('r', 'absent.wav')}: HTTP 404",
        "errorCode": "generation_media_fetch_failed",
    }
    request = body(host)
    request["input"][0]["url"] = "http://127.0.0.1:1/v.mp4"  # nothing listens there
    refused = await api.client.post("/v2/analyze/cost", json=request)
    assert refused.status_code == 400 and refused.json()["errorCode"] == "generation_media_fetch_failed"
    assert refused.json()["message"].startswith("input[0] (video): could not fetch http://127.0.0.1:1/v.mp4")


async def test_media_that_cannot_be_read_is_a_400(api: Api, host: MediaHost) -> None:
    response = await api.client.post("/v2/analyze/cost", json=body(host, "notes.txt"))
    assert response.status_code == 400
    assert response.json()["errorCode"] == "generation_media_unsupported"
    assert response.json()["message"].startswith(f"input[1] (audio) {host.url('r', 'notes.txt')}: ")


async def test_a_key_is_required(api: Api, host: MediaHost) -> None:
    missing = await api.client.post("/v2/analyze/cost", json=body(host), headers={"x-api-key": ""})
    assert missing.status_code == 401 and missing.json()["errorCode"] == "unauthorized"
    wrong = await api.client.post(
        "/v2/analyze/cost", json={}, headers={"x-api-key": "lsk_wrong_key_0123456789"}
    )
    assert wrong.status_code == 401


def batch_line(request_id: str, payload: dict[str, Any]) -> str:
    return json.dumps({"request_id": request_id, "endpoint": "/v2/generate", "payload": payload})


async def test_a_dry_run_sums_the_estimates_and_warns_per_line(api: Api, host: MediaHost) -> None:
    lines = [
        batch_line("a", body(host, "long.wav")),
        batch_line("b", body(host, "short.wav")),
        batch_line("c", body(host, "absent.wav")),
        batch_line("d", body(host, "long.wav", model="sync-3")),
    ]
    files = {"input": ("batch.jsonl", "\n".join(lines).encode(), "application/jsonl")}
    response = await api.client.post("/v2/batch", files=files, data={"dry_run": "true"})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "VALIDATED",
        "total_generations": 4,
        "estimatedFrameCount": 75,
        "estimatedGenerationCost": 0.15,
        "warnings": [
            f"line 3: input[1] (audio): could not fetch {host.url('r', 'absent.wav')}: HTTP 404",
            "line 4: no price is configured for model 'sync-3' (setting model_prices)",
            "estimates cover 2 of 4 lines",
        ],
    }
    assert (await api.client.get("/v2/batch")).json() == []


async def test_a_dry_run_with_nothing_estimable_has_null_estimates(api: Api, host: MediaHost) -> None:
    files = {
        "input": ("batch.jsonl", batch_line("a", body(host, "absent.wav")).encode(), "application/jsonl")
    }
    answer = (await api.client.post("/v2/batch", files=files, data={"dry_run": "true"})).json()
    assert answer["estimatedFrameCount"] is None and answer["estimatedGenerationCost"] is None
    assert answer["warnings"][-1] == "estimates cover 0 of 1 lines"


async def stored_asset(api: Api, org_id: str, kind: str, source: Path) -> str:
    """An uploaded asset of ``org_id`` holding ``source``."""
    asset = await api.state.store.assets.create(org_id, AssetKind(kind), source.stat().st_size, source.name)
    await api.state.storage.put_file(asset.storage_key, source)
    return asset.id


async def test_uploaded_assets_are_estimated_from_their_files(api: Api, host: MediaHost) -> None:
    org = await api.state.store.organizations.find_by_key(BOOTSTRAP_KEY)
    assert org is not None
    video = await stored_asset(api, org.id, "video", host.folder / "face.mp4")
    audio = await stored_asset(api, org.id, "audio", host.folder / "short.wav")
    request = {
        "model": "lipsync-2",
        "input": [{"type": "video", "assetId": video}, {"type": "audio", "assetId": audio}],
    }
    response = await api.client.post("/v2/analyze/cost", json=request)
    assert response.status_code == 200, response.text
    assert response.json() == [{"estimatedFrameCount": 25, "estimatedGenerationCost": 0.05}]
    other = await api.state.store.organizations.create("other", "growth")
    foreign = await stored_asset(api, other.id, "audio", host.folder / "short.wav")
    request["input"][1] = {"type": "audio", "assetId": foreign}
    refused = await api.client.post("/v2/analyze/cost", json=request)
    assert refused.status_code == 400
    assert "input[1].assetId: no such asset" in refused.json()["message"][0]


async def test_a_dry_run_checks_the_webhook_url_and_assets_as_creation_does(
    api: Api, host: MediaHost
) -> None:
    data = batch_line("a", body(host, "long.wav")).encode()
    files = {"input": ("batch.jsonl", data, "application/jsonl")}
    bad_hook = await api.client.post(
        "/v2/batch", files=files, data={"dry_run": "true", "webhook_url": "ftp://hooks.example.com"}
    )
    assert bad_hook.status_code == 400 and "webhook_url" in str(bad_hook.json()["message"])
    foreign = {
        **body(host),
        "input": [{"type": "video", "assetId": str(uuid.uuid4())}, body(host)["input"][1]],
    }
    files = {"input": ("batch.jsonl", batch_line("a", foreign).encode(), "application/jsonl")}
    refused = await api.client.post("/v2/batch", files=files, data={"dry_run": "true"})
    assert refused.status_code == 400
    [error] = refused.json()["errors"]
    assert (error["line"], error["field"]) == (1, "payload.input[0].assetId")


async def test_a_large_dry_run_probes_a_sample_and_extrapolates(
    tmp_path: Path, database_url: str, host: MediaHost
) -> None:
    tag = uuid.uuid4().hex[:8]
    voices = [f"voice_{tag}_{index}.wav" for index in range(8)]
    for index, name in enumerate(voices):  # 3 s tracks (cut off at the 2 s video), and 1 s ones
        (host.folder / name).hardlink_to(host.folder / ("short.wav" if index % 4 == 2 else "long.wav"))
    settings = api_settings(
        tmp_path,
        database_url,
        fetch_allow_private_addresses=True,
        model_prices=PRICES,
        estimate_sample_size=3,
    )
    lines = "\n".join(batch_line(f"r{index}", body(host, name)) for index, name in enumerate(voices))
    files = {"input": ("batch.jsonl", lines.encode(), "application/jsonl")}
    async with running_api(settings, run_workers=False) as running:
        host.clear()
        answer = (await running.client.post("/v2/batch", files=files, data={"dry_run": "true"})).json()
        probed = {served.path.rsplit("/", 1)[-1] for served in host.served()}
        assert probed == {"face.mp4", voices[2], voices[6]}  # the video, then an even spread of the voices
        # Lines 3 and 7 are exact (1 s: 25 frames); the other six get their mean.
        assert answer["estimatedFrameCount"] == 8 * 25
        assert answer["warnings"] == [
            "estimates extrapolated from 3 probed of 9 media URLs: 6 of 8 lines are the mean of the probed "
            "lines with their video"
        ]
        host.clear()
        again = (await running.client.post("/v2/batch", files=files, data={"dry_run": "true"})).json()
        assert again == answer and host.served() == []  # the sample is cached: nothing is read again
