"""assetId inputs on the engine's side: an asset's stored file is readable, no other local path is."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from lipsync_api.api.engine_request import to_engine_request
from lipsync_api.api.generation_request import parse_generation
from lipsync_api.api.schemas import CreateGeneration
from lipsync_api.domain.assets import local_asset_paths
from lipsync_api.engine.pipeline import render
from lipsync_api.engine.request import AudioInput, EngineConfig, GenerationRequest
from lipsync_api.errors import GenerationError
from lipsync_api.storage.local import LocalStorage
from lipsync_api.store.assets import asset_key
from tests.unit.api.factories import AUDIO_URL, simple_payload


def parsed(payload: object) -> CreateGeneration:
    model, problems = parse_generation(payload)
    assert problems == [] and model is not None
    return model


def test_an_asset_becomes_its_file_and_only_it_is_a_readable_local_path() -> None:
    payload = simple_payload(input=[{"type": "video", "assetId": "v1"}, {"type": "audio", "url": AUDIO_URL}])
    request = to_engine_request(
        parsed(payload), asset_path=lambda asset_id, kind: Path(f"/assets/{asset_id}/{kind}")
    )
    assert request == GenerationRequest(
        video="/assets/v1/video",
        audios=(AudioInput(source=AUDIO_URL),),
        asset_files=frozenset({"/assets/v1/video"}),
    )
    assert request.allow_local_files is False


def test_several_audio_assets_keep_their_ref_ids() -> None:
    payload = simple_payload(input=[{"type": "video", "url": "https://m.example.com/v.mp4"}])
    payload["input"] += [
        {"type": "audio", "assetId": "a1", "refId": "one"},
        {"type": "audio", "assetId": "a2", "refId": "two"},
    ]
    payload["segments"] = [
        {"startTime": 0, "endTime": 1, "audioInput": {"refId": "one"}},
        {"startTime": 1, "endTime": 2, "audioInput": {"refId": "two"}},
    ]
    request = to_engine_request(
        parsed(payload), asset_path=lambda asset_id, kind: Path(f"/{kind}/{asset_id}")
    )
    assert request.audios == (AudioInput("/audio/a1", "one"), AudioInput("/audio/a2", "two"))
    assert (
        request.asset_files == {"/audio/a1", "/audio/a2"} and request.video == "https://m.example.com/v.mp4"
    )


def test_local_asset_paths_find_stored_files_and_fail_for_missing_ones(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "files")
    asset_id = str(uuid.uuid4())
    path = storage.path_for(asset_key(asset_id, "video"))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"video bytes")
    resolve = local_asset_paths(storage)
    assert resolve(asset_id, "video") == path
    for bad_id, kind in ((asset_id, "audio"), (str(uuid.uuid4()), "video"), ("../../etc/passwd", "video")):
        with pytest.raises(GenerationError) as raised:
            resolve(bad_id, kind)
        assert raised.value.error_code == "generation_media_fetch_failed" and str(tmp_path) not in str(
            raised.value
        )


def test_the_pipeline_reads_an_asset_file_but_refuses_other_local_paths(tmp_path: Path) -> None:
    asset = tmp_path / "asset-video"
    asset.write_bytes(b"not decoded: the fetch of the audio fails first")
    request = GenerationRequest(
        video=str(asset),
        audios=(AudioInput(source=str(tmp_path / "speech.wav")),),
        asset_files=frozenset({str(asset)}),
    )
    with pytest.raises(GenerationError) as raised:
        render(request, tmp_path / "work", EngineConfig(cache_dir=None))
    assert raised.value.error_code == "generation_media_fetch_failed"
    assert "local paths are not allowed" in str(raised.value) and "speech.wav" in str(raised.value)
