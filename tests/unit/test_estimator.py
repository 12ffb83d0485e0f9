"""The estimator with a fake prober: cache, per-input errors, time budget, batch lines."""

from __future__ import annotations

import threading
from collections import Counter
from fractions import Fraction
from typing import Any

import pytest

from lipsync_api.api.schemas import CreateGeneration
from lipsync_api.domain.batchfile import BatchLine
from lipsync_api.domain.estimate import Sampling
from lipsync_api.domain.generation_service import ValidPayload
from lipsync_api.engine.media import AudioStreamInfo, MediaInfo, VideoStreamInfo
from lipsync_api.engine.request import EngineConfig
from lipsync_api.errors import ErrorCode, GenerationError, InvalidRequestError
from lipsync_api.estimator import Estimator, MediaInput, ProbeCache, media_inputs, sample_urls

VIDEO = "https://media.example.com/v.mp4"
PRICES = {"lipsync-2": 0.05}


def video_info(seconds: float, fps: int = 25, width: int = 640) -> MediaInfo:
    stream = VideoStreamInfo("h264", width, 360, Fraction(fps), round(seconds * fps), seconds, 0, False)
    return MediaInfo("mp4", seconds, stream, None)


def audio_info(seconds: float) -> MediaInfo:
    return MediaInfo("wav", seconds, None, AudioStreamInfo("pcm_s16le", 48000, 1, seconds))


class FakeProber:
    """Answers from a table by URL; counts calls; an Exception in the table is raised."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table, self.calls = table, Counter[str]()
        self.release = threading.Event()

    def __call__(self, url: str, deadline: float) -> MediaInfo:
        self.calls[url] += 1
        found = self.table[url]
        if found == "hang":
            self.release.wait(10)
            raise GenerationError(ErrorCode.MEDIA_FETCH_FAILED, "released")
        if isinstance(found, Exception):
            raise found
        assert isinstance(found, MediaInfo)
        return found


@pytest.fixture
def prober() -> FakeProber:
    return FakeProber(
        {
            VIDEO: video_info(4.0),
            "https://media.example.com/long.wav": audio_info(6.0),
            "https://media.example.com/short.wav": audio_info(2.0),
            "https://media.example.com/gone.wav": GenerationError(
                ErrorCode.MEDIA_FETCH_FAILED, "could not fetch https://media.example.com/gone.wav: HTTP 404"
            ),
            "https://media.example.com/text.wav": GenerationError(
                ErrorCode.MEDIA_UNSUPPORTED, "input is not a decodable media file: Invalid data"
            ),
            "https://media.example.com/video.wav": video_info(2.0),
            "https://media.example.com/huge.mp4": video_info(2.0, width=8000),
            "https://media.example.com/bug.wav": ZeroDivisionError("oops"),
            "https://media.example.com/slow.wav": "hang",
        }
    )


@pytest.fixture
def estimator(prober: FakeProber) -> Any:
    made = Estimator(EngineConfig(), PRICES, 5.0, ProbeCache(3600, 100), prober)
    yield made
    prober.release.set()
    made.close()


def request(audio: str, **extra: Any) -> CreateGeneration:
    body = {"model": "lipsync-2", "input": [{"type": "video", "url": VIDEO}, {"type": "audio", "url": audio}]}
    return CreateGeneration.model_validate(body | extra)


@pytest.mark.asyncio
async def test_estimate_for_the_default_and_other_modes(estimator: Estimator) -> None:
    found = await estimator.estimate(request("https://media.example.com/long.wav"))
    assert found.wire() == {"estimatedFrameCount": 100, "estimatedGenerationCost": 0.2}  # cut_off: 4 s
    looped = await estimator.estimate(
        request("https://media.example.com/long.wav", options={"sync_mode": "loop"})
    )
    assert looped.wire() == {"estimatedFrameCount": 150, "estimatedGenerationCost": 0.3}


@pytest.mark.asyncio
async def test_segments_use_the_ref_ids(estimator: Estimator) -> None:
    body = {
        "model": "lipsync-2",
        "input": [
            {"type": "video", "url": VIDEO},
            {"type": "audio", "url": "https://media.example.com/short.wav", "refId": "a"},
        ],
        "segments": [{"startTime": 1.0, "endTime": 3.0, "audioInput": {"refId": "a"}}],
    }
    found = await estimator.estimate(CreateGeneration.model_validate(body))
    assert found.frame_count == 100  # the video's length
    beyond = body | {"segments": [{"startTime": 1.0, "endTime": 9.0, "audioInput": {"refId": "a"}}]}
    with pytest.raises(InvalidRequestError, match="beyond the video's end") as raised:
        await estimator.estimate(CreateGeneration.model_validate(beyond))
    assert raised.value.error_code == "generation_invalid_segments"


@pytest.mark.asyncio
async def test_probes_are_cached_by_url(estimator: Estimator, prober: FakeProber) -> None:
    await estimator.estimate(request("https://media.example.com/long.wav"))
    await estimator.estimate(request("https://media.example.com/short.wav"))
    assert prober.calls[VIDEO] == 1


@pytest.mark.asyncio
async def test_failures_are_not_cached(estimator: Estimator, prober: FakeProber) -> None:
    for _ in range(2):
        with pytest.raises(InvalidRequestError):
            await estimator.estimate(request("https://media.example.com/gone.wav"))
    assert prober.calls["https://media.example.com/gone.wav"] == 2


@pytest.mark.parametrize(
    ("audio", "code", "message"),
    [
        (
            "https://media.example.com/gone.wav",
            "generation_media_fetch_failed",
            "input[1] (audio): could not fetch https://media.example.com/gone.wav: HTTP 404",
        ),
        (
            "https://media.example.com/text.wav",
            "generation_media_unsupported",
            "input[1] (audio) https://media.example.com/text.wav: input is not a decodable media file: "
            "Invalid data",
        ),
        (
            "https://media.example.com/bug.wav",
            "generation_media_unsupported",
            "input[1] (audio) https://media.example.com/bug.wav: input could not be read: "
            "ZeroDivisionError: oops",
        ),
        (
            "https://media.example.com/huge.mp4",
            "generation_audio_missing",
            "input[1] (audio) https://media.example.com/huge.mp4: audio input has no audio stream",
        ),
    ],
)
@pytest.mark.asyncio
async def test_an_unreadable_input_is_a_400_naming_it(
    estimator: Estimator, audio: str, code: str, message: str
) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        await estimator.estimate(request(audio))
    assert (raised.value.error_code, raised.value.message) == (code, message)


@pytest.mark.asyncio
async def test_the_engine_limits_apply(estimator: Estimator) -> None:
    body = {
        "model": "lipsync-2",
        "input": [
            {"type": "video", "url": "https://media.example.com/huge.mp4"},
            {"type": "audio", "url": "https://media.example.com/short.wav"},
        ],
    }
    with pytest.raises(InvalidRequestError, match="8000x360") as raised:
        await estimator.estimate(CreateGeneration.model_validate(body))
    assert raised.value.error_code == "generation_media_too_large"


@pytest.mark.asyncio
async def test_a_model_without_a_price(estimator: Estimator, prober: FakeProber) -> None:
    with pytest.raises(InvalidRequestError, match="no price") as raised:
        await estimator.estimate(request("https://media.example.com/long.wav", model="sync-3"))
    assert raised.value.error_code == "generation_unsupported_model"
    assert not prober.calls  # refused before any probe


@pytest.mark.asyncio
async def test_a_probe_over_the_time_budget_is_a_fetch_failure(prober: FakeProber) -> None:
    quick = Estimator(EngineConfig(), PRICES, 0.2, ProbeCache(3600, 100), prober)
    try:
        with pytest.raises(InvalidRequestError, match=r"not read within the 0\.2 s") as raised:
            await quick.estimate(request("https://media.example.com/slow.wav"))
        assert raised.value.error_code == "generation_media_fetch_failed"
    finally:
        prober.release.set()
        quick.close()


@pytest.mark.asyncio
async def test_asset_inputs_need_an_asset_resolver(estimator: Estimator) -> None:
    body = {
        "model": "lipsync-2",
        "input": [{"type": "video", "url": VIDEO}, {"type": "audio", "assetId": "a1b2"}],
    }
    with pytest.raises(InvalidRequestError, match="uploaded assets cannot be read here"):
        await estimator.estimate(CreateGeneration.model_validate(body))


def line(number: int, model: CreateGeneration) -> BatchLine[ValidPayload]:
    return BatchLine(number, f"r{number}", ValidPayload({}, model))


@pytest.mark.asyncio
async def test_lines_are_estimated_each_url_probed_once(estimator: Estimator, prober: FakeProber) -> None:
    lines = [
        line(1, request("https://media.example.com/long.wav")),
        line(2, request("https://media.example.com/short.wav")),
        line(3, request("https://media.example.com/gone.wav")),
        line(4, request("https://media.example.com/long.wav", model="sync-3")),
        line(5, request("https://media.example.com/long.wav")),
    ]
    outcomes = (await estimator.estimate_lines(lines)).outcomes
    assert [o.estimate.frame_count if o.estimate else None for o in outcomes] == [100, 50, None, None, 100]
    assert (
        outcomes[2].problem
        == "input[1] (audio): could not fetch https://media.example.com/gone.wav: HTTP 404"
    )
    assert outcomes[3].problem is not None and "no price" in outcomes[3].problem
    assert set(prober.calls.values()) == {1}


def test_cache_entries_expire_and_the_oldest_go_first() -> None:
    now = [0.0]
    cache = ProbeCache(10, 2, clock=lambda: now[0])
    cache.put("a", audio_info(1))
    cache.put("b", audio_info(2))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("c", audio_info(3))
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    now[0] = 11
    assert cache.get("a") is None and cache.get("c") is None


def test_a_zero_ttl_caches_nothing() -> None:
    cache = ProbeCache(0, 100)
    cache.put("a", audio_info(1))
    assert cache.get("a") is None


def voice(index: int) -> str:
    return f"https://media.example.com/voice_{index}.wav"


def campaign(prober: FakeProber, seconds: list[float], video: str = VIDEO) -> list[BatchLine[ValidPayload]]:
    """One line per voice track (``seconds`` long each) on ``video``; the tracks are added to the prober."""
    lines = []
    for index, length in enumerate(seconds):
        prober.table[voice(index)] = audio_info(length)
        model = CreateGeneration.model_validate(
            {
                "model": "lipsync-2",
                "input": [{"type": "video", "url": video}, {"type": "audio", "url": voice(index)}],
            }
        )
        lines.append(line(index + 1, model))
    return lines


def inputs_of(lines: list[BatchLine[ValidPayload]]) -> list[list[MediaInput]]:
    return [media_inputs(item.payload.model) for item in lines]


def test_the_sample_takes_every_video_then_an_even_spread_of_the_rest(prober: FakeProber) -> None:
    lines = campaign(prober, [1.0] * 10)
    assert sample_urls(inputs_of(lines), 4) == [VIDEO, voice(1), voice(5), voice(8)]
    assert sample_urls(inputs_of(lines), 4) == sample_urls(inputs_of(lines), 4)  # deterministic
    assert sample_urls(inputs_of(lines), 11) == [VIDEO, *(voice(i) for i in range(10))]  # all: exact
    assert sample_urls(inputs_of(lines), 0) == [VIDEO, *(voice(i) for i in range(10))]  # 0: no bound


@pytest.mark.asyncio
async def test_a_sampled_batch_probes_the_sample_and_extrapolates_the_rest(prober: FakeProber) -> None:
    sampled = Estimator(EngineConfig(), PRICES, 5.0, ProbeCache(3600, 100), prober, sample_size=3)
    try:
        lines = campaign(prober, [2.0, 1.0, 2.0, 1.0, 3.0, 2.0])  # probed: the video, voices 1 and 4
        found = await sampled.estimate_lines(lines)
        assert set(prober.calls) == {VIDEO, voice(1), voice(4)}
        frames = [o.estimate.frame_count if o.estimate else None for o in found.outcomes]
        assert frames == [50, 25, 50, 50, 75, 50]  # exact: 1 s and 3 s; the others their mean, 2 s
        assert [o.extrapolated for o in found.outcomes] == [True, False, True, True, False, True]
        assert found.sampling == Sampling(3, 7)
        again = await sampled.estimate_lines(lines)  # the sample is cached: nothing more is probed
        assert again == found and set(prober.calls.values()) == {1}
    finally:
        sampled.close()


@pytest.mark.asyncio
async def test_a_batch_within_the_sample_size_is_exact(prober: FakeProber) -> None:
    sampled = Estimator(EngineConfig(), PRICES, 5.0, ProbeCache(3600, 100), prober, sample_size=3)
    try:
        found = await sampled.estimate_lines(campaign(prober, [2.0, 1.0]))
        assert [o.estimate.frame_count if o.estimate else None for o in found.outcomes] == [50, 25]
        assert found.sampling is None and not any(o.extrapolated for o in found.outcomes)
        # A single request is always estimated from its own media, whatever the sample size.
        single = Estimator(EngineConfig(), PRICES, 5.0, ProbeCache(3600, 100), prober, sample_size=1)
        try:
            assert (await single.estimate(request(voice(1)))).frame_count == 25
        finally:
            single.close()
    finally:
        sampled.close()


@pytest.mark.asyncio
async def test_known_media_make_lines_exact_and_probed_failures_still_warn(prober: FakeProber) -> None:
    sampled = Estimator(EngineConfig(), PRICES, 5.0, ProbeCache(3600, 100), prober, sample_size=3)
    try:
        lines = campaign(prober, [2.0, 1.0, 2.0, 1.0, 3.0, 2.0])
        prober.table[voice(4)] = GenerationError(
            ErrorCode.MEDIA_FETCH_FAILED, "could not fetch voice 4: HTTP 404"
        )
        sampled.cache.put(voice(5), audio_info(4.0))  # read by an earlier estimate
        found = await sampled.estimate_lines(lines)
        frames = [o.estimate.frame_count if o.estimate else None for o in found.outcomes]
        # Lines 2 (1 s: 25 frames) and 6 (cached, 4 s: 100) are exact; 1, 3 and 4 get their mean, 62.5.
        assert frames == [62, 25, 62, 62, None, 100]
        assert found.outcomes[4].problem == "input[1] (audio): could not fetch voice 4: HTTP 404"
        assert found.outcomes[5].extrapolated is False  # its media were cached
        assert found.sampling == Sampling(4, 7)
    finally:
        sampled.close()


@pytest.mark.asyncio
async def test_unprobed_lines_take_the_mean_of_their_own_template(prober: FakeProber) -> None:
    other = "https://media.example.com/other.mp4"
    prober.table[other] = video_info(1.0)
    sampled = Estimator(EngineConfig(), PRICES, 5.0, ProbeCache(3600, 100), prober, sample_size=4)
    try:
        lines = campaign(prober, [3.0, 3.0, 3.0, 3.0]) + [
            line(5 + i, request_on(other, voice(i))) for i in range(4)
        ]
        found = await sampled.estimate_lines(lines)
        frames = [o.estimate.frame_count if o.estimate else None for o in found.outcomes]
        assert frames == [75] * 4 + [25] * 4  # each template's own length (cut_off)
    finally:
        sampled.close()


def request_on(video: str, audio: str) -> CreateGeneration:
    body = {"model": "lipsync-2", "input": [{"type": "video", "url": video}, {"type": "audio", "url": audio}]}
    return CreateGeneration.model_validate(body)
