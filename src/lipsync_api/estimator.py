"""Frame and cost estimates of generate requests and batch lines, from their media probed by URL.

Probes run on a small thread pool of their own, a few at once, within one time budget per call
(``estimate_timeout_seconds``). Results are cached in-process by URL (bounded, least recently used
first, with a TTL), so a campaign's template video is probed once for all its lines. A batch dry run
stays a quick check: it probes at most ``estimate_sample_size`` distinct URLs and extrapolates the lines
whose media it did not read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from lipsync_api.api.engine_request import AssetPath, segment_specs, sync_mode_of
from lipsync_api.api.schemas import AudioInput, CreateGeneration, VideoInput
from lipsync_api.config import Settings
from lipsync_api.domain.assets import asset_problems
from lipsync_api.domain.batchfile import BatchLine
from lipsync_api.domain.estimate import (
    Estimate,
    LineEstimates,
    LineOutcome,
    Sampling,
    Unprobed,
    estimate,
    extrapolate,
    output_frames,
    price_per_second,
)
from lipsync_api.domain.generation_service import ServiceLimits, ValidPayload, validate_payload
from lipsync_api.engine.fetch import redact_url
from lipsync_api.engine.media import MediaInfo, check_audio_limits, check_video_limits, probe
from lipsync_api.engine.probe_url import UrlProber
from lipsync_api.engine.request import EngineConfig
from lipsync_api.engine.timeline import VideoTiming
from lipsync_api.errors import (
    ErrorCode,
    GenerationError,
    InvalidGenerationRequest,
    InvalidRequestError,
    LipsyncError,
)
from lipsync_api.store import Store

log = logging.getLogger(__name__)

CONCURRENT_PROBES = 8
MAIN_AUDIO = "main"
ASSET_SCHEME = "asset:"  # an uploaded asset's stand-in URL: ``asset:<id>:<kind>``, probed from storage
Prober = Callable[[str, float], MediaInfo]
"""(url, deadline as a ``time.monotonic()`` value) -> what the media holds; raises GenerationError."""
Probed = MediaInfo | GenerationError


class ProbeCache:
    """Probe results by URL: at most ``max_entries``, each kept ``ttl_seconds``; safe across threads."""

    def __init__(
        self, ttl_seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl, self._max, self._clock = ttl_seconds, max_entries, clock
        self._entries: OrderedDict[str, tuple[float, MediaInfo]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> MediaInfo | None:
        """The cached result, if one is still fresh."""
        with self._lock:
            entry = self._entries.get(url)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                del self._entries[url]
                return None
            self._entries.move_to_end(url)
            return entry[1]

    def put(self, url: str, info: MediaInfo) -> None:
        """Remember ``info`` for ``url``, dropping the least recently used entries past the bound."""
        if self._ttl <= 0 or self._max <= 0:
            return
        with self._lock:
            self._entries[url] = (self._clock() + self._ttl, info)
            self._entries.move_to_end(url)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)


@dataclass(frozen=True)
class MediaInput:
    """A media input of a request: where it is in ``input``, its kind, URL and the planner's name for it."""

    index: int
    kind: str
    url: str
    key: str

    def problem(self, error: LipsyncError) -> str:
        """``input[1] (audio): could not fetch https://...: HTTP 404`` and the like."""
        where = f"input[{self.index}] ({self.kind})"
        if error.error_code == ErrorCode.MEDIA_FETCH_FAILED:
            return f"{where}: {error.message}"  # the fetch's message names the URL already
        return f"{where} {redact_url(self.url)}: {error.message}"


class Unestimable(Exception):
    """A request whose estimate cannot be made: every problem found, and the first one's error code."""

    def __init__(self, error_code: str | None, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.error_code, self.problems = error_code, problems

    def as_request_error(self) -> InvalidRequestError:
        """The 400 the cost endpoint answers."""
        return InvalidRequestError("; ".join(self.problems), error_code=self.error_code)


def media_inputs(model: CreateGeneration) -> list[MediaInput]:
    """The request's video and audio inputs; an uploaded asset's "url" is ``asset:<id>:<kind>``."""
    found: list[MediaInput] = []
    for index, item in enumerate(model.input):
        if not isinstance(item, VideoInput | AudioInput):
            continue
        url = item.url if item.url is not None else f"{ASSET_SCHEME}{item.asset_id}:{item.type}"
        key = MAIN_AUDIO
        if isinstance(item, AudioInput) and model.segments and item.ref_id:
            key = item.ref_id  # as the engine's pipeline names audio sources
        found.append(MediaInput(index, item.type, url, key))
    return found


def sample_urls(inputs: Iterable[Sequence[MediaInput]], size: int) -> list[str]:
    """The distinct URLs of ``inputs`` a batch estimate probes: all of them when there are at most ``size``
    (or ``size`` is 0); else every distinct video URL first (a campaign has few templates), then an even
    spread of the others, ``size`` in all. The same lines always give the same sample."""
    videos: dict[str, None] = {}
    others: dict[str, None] = {}
    for items in inputs:
        for item in items:
            (videos if item.kind == "video" else others).setdefault(item.url, None)
    rest = [url for url in others if url not in videos]
    if size <= 0 or len(videos) + len(rest) <= size:
        return [*videos, *rest]
    chosen = list(videos)[:size]
    room = size - len(chosen)
    return chosen + [rest[(2 * i + 1) * len(rest) // (2 * room)] for i in range(room)]


class Estimator:
    """Estimates requests, probing their media through ``prober`` (the engine's, by default).

    ``sample_size`` bounds the distinct URLs a batch estimate probes (0: no bound); a single request's
    estimate always probes all of its inputs.
    """

    def __init__(
        self,
        config: EngineConfig,
        prices: Mapping[str, float],
        timeout_seconds: float,
        cache: ProbeCache,
        prober: Prober | None = None,
        asset_path: AssetPath | None = None,
        sample_size: int = 0,
    ) -> None:
        self.config, self.prices, self.timeout, self.cache = config, dict(prices), timeout_seconds, cache
        self.sample_size = sample_size
        self._asset_path = asset_path
        self._own_prober = UrlProber(config.fetch, config.max_fps) if prober is None else None
        self._prober: Prober = prober or self._engine_probe
        self._pool = ThreadPoolExecutor(CONCURRENT_PROBES, thread_name_prefix="estimate")

    @classmethod
    def from_settings(cls, settings: Settings, asset_path: AssetPath | None = None) -> Estimator:
        """The estimator the service uses; ``asset_path`` finds uploaded assets' files."""
        cache = ProbeCache(settings.estimate_cache_ttl_seconds, settings.estimate_cache_max_entries)
        config, prices = settings.engine_config(), settings.model_prices
        timeout, sample = settings.estimate_timeout_seconds, settings.estimate_sample_size
        return cls(config, prices, timeout, cache, asset_path=asset_path, sample_size=sample)

    def close(self) -> None:
        """Stop the probe threads (a probe in progress ends at its time limit)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._own_prober is not None:
            self._own_prober.close()

    async def estimate(self, model: CreateGeneration) -> Estimate:
        """One request's estimate; any input that cannot be read (or priced) is a 400 naming it."""
        try:
            price_per_second(model.model, self.prices)
            inputs = media_inputs(model)
            probed = await self.probe_all(item.url for item in inputs)
            return self._evaluate(model, probed)
        except Unestimable as failure:
            raise failure.as_request_error() from None

    async def estimate_lines(self, lines: Sequence[BatchLine[ValidPayload]]) -> LineEstimates:
        """Each line's estimate, or why it has none; distinct URLs are probed once for all lines.

        With a ``sample_size``, at most that many distinct URLs are probed (``sample_urls``); lines whose
        media are all known (probed now, or cached) are estimated exactly, the others extrapolated.
        """
        inputs = {
            line.line: media_inputs(line.payload.model)
            for line in lines
            if line.payload.model.model in self.prices  # no price, no estimate: nothing to probe
        }
        distinct = list(dict.fromkeys(item.url for found in inputs.values() for item in found))
        chosen = sample_urls(inputs.values(), self.sample_size)
        known: dict[str, Probed] = await self.probe_all(chosen)
        for url in distinct:
            if url not in known and (cached := self.cache.get(url)) is not None:
                known[url] = cached
        outcomes: dict[int, LineOutcome] = {}
        estimated: list[tuple[str, Estimate]] = []
        unprobed: list[Unprobed] = []
        for line in lines:
            model = line.payload.model
            items = inputs.get(line.line, [])
            if any(item.url not in known for item in items):
                failed = [(item, known[item.url]) for item in items if item.url in known]
                problems = [
                    item.problem(error) for item, error in failed if isinstance(error, GenerationError)
                ]
                if problems:  # what was probed already says it cannot run
                    outcomes[line.line] = LineOutcome(line.line, None, "; ".join(problems))
                else:
                    video = next((item.url for item in items if item.kind == "video"), "")
                    unprobed.append(Unprobed(line.line, video, self.prices[model.model]))
                continue
            try:
                found = self._evaluate(model, known)
            except (Unestimable, InvalidRequestError) as failure:
                outcomes[line.line] = LineOutcome(line.line, None, str(failure))
                continue
            outcomes[line.line] = LineOutcome(line.line, found)
            estimated.append((next(item.url for item in items if item.kind == "video"), found))
        for outcome in extrapolate(estimated, unprobed):
            outcomes[outcome.line] = outcome
        sampling = Sampling(sum(url in known for url in distinct), len(distinct)) if unprobed else None
        return LineEstimates([outcomes[line.line] for line in lines], sampling)

    async def probe_all(self, urls: Iterable[str]) -> dict[str, Probed]:
        """What each distinct URL holds (or why it could not be read), within the time budget."""
        deadline = time.monotonic() + self.timeout
        results: dict[str, Probed] = {}
        missing = []
        for url in dict.fromkeys(urls):
            cached = self.cache.get(url)
            if cached is not None:
                results[url] = cached
            else:
                missing.append(url)
        if missing:
            results.update(await self._probe_missing(missing, deadline))
        return results

    async def _probe_missing(self, urls: list[str], deadline: float) -> dict[str, Probed]:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(CONCURRENT_PROBES)

        async def one(url: str) -> tuple[str, Probed]:
            async with gate:
                if time.monotonic() >= deadline:
                    return url, self._too_slow(url)
                return url, await loop.run_in_executor(self._pool, self._probe, url, deadline)

        tasks = [asyncio.ensure_future(one(url)) for url in urls]
        done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        results = dict(task.result() for task in done)
        return {url: results[url] if url in results else self._too_slow(url) for url in urls}

    def _probe(self, url: str, deadline: float) -> Probed:
        """Probe in a pool thread; a failure is returned, never raised, and never cached."""
        try:
            info = self._probe_asset(url) if url.startswith(ASSET_SCHEME) else self._prober(url, deadline)
        except GenerationError as error:
            return error
        except Exception as error:  # a bug, or media PyAV chokes on: not worth a 500 in an estimate
            log.warning("probing %s for an estimate failed", redact_url(url), exc_info=True)
            message = f"input could not be read: {type(error).__name__}: {error}"
            return GenerationError(ErrorCode.MEDIA_UNSUPPORTED, message)
        self.cache.put(url, info)
        return info

    def _probe_asset(self, url: str) -> MediaInfo:
        """An uploaded asset, probed from its stored file (ownership was checked on the request)."""
        asset_id, _, kind = url.removeprefix(ASSET_SCHEME).partition(":")
        if self._asset_path is None:
            raise GenerationError(ErrorCode.MEDIA_FETCH_FAILED, "uploaded assets cannot be read here")
        return probe(self._asset_path(asset_id, kind), self.config.max_fps)

    def _engine_probe(self, url: str, deadline: float) -> MediaInfo:
        assert self._own_prober is not None  # made whenever no prober is given
        return self._own_prober(url, deadline)

    def _too_slow(self, url: str) -> GenerationError:
        return GenerationError(
            ErrorCode.MEDIA_FETCH_FAILED,
            f"could not fetch {redact_url(url)}: not read within the {self.timeout:g} s estimate time limit",
            transient=True,
        )

    def _evaluate(self, model: CreateGeneration, probed: Mapping[str, Probed]) -> Estimate:
        """The estimate from probed media; raises Unestimable naming every input that failed."""
        price = price_per_second(model.model, self.prices)
        inputs = media_inputs(model)
        video: VideoTiming | None = None
        audio_seconds: dict[str, float] = {}
        failures: list[tuple[MediaInput, LipsyncError]] = []
        for item in inputs:
            info = probed[item.url]
            if isinstance(info, GenerationError):
                failures.append((item, info))
                continue
            try:
                if item.kind == "video":
                    stream = check_video_limits(info, self.config)
                    video = VideoTiming(stream.frame_count, stream.fps)
                else:
                    audio_seconds[item.key] = check_audio_limits(info, self.config).duration
            except GenerationError as error:
                failures.append((item, error))
        if failures:
            raise Unestimable(failures[0][1].error_code, [item.problem(error) for item, error in failures])
        if video is None:  # parse_generation guarantees a video input
            raise Unestimable(None, ["needs exactly one video input"])
        try:
            mode, segments = sync_mode_of(model), segment_specs(model)
            frames = output_frames(video, audio_seconds, mode, segments, MAIN_AUDIO)
        except GenerationError as error:
            raise Unestimable(error.error_code, [error.message]) from None
        return estimate(frames, video.fps, price)


async def estimate_generation(
    estimator: Estimator, body: object, limits: ServiceLimits, store: Store, organization_id: str
) -> Estimate:
    """``POST /v2/analyze/cost``: the body validated as ``POST /v2/generate`` validates it, then estimated."""
    payload, problems = validate_payload(body, limits.catalog)
    if payload is not None and (problems := await asset_problems(store, organization_id, payload.model)):
        payload = None
    if payload is None:
        codes = {problem.code for problem in problems}
        code = codes.pop() if len(codes) == 1 else None
        raise InvalidGenerationRequest([problem.describe() for problem in problems], error_code=code)
    return await estimator.estimate(payload.model)


@contextlib.asynccontextmanager
async def open_estimator(settings: Settings, asset_path: AssetPath | None = None) -> AsyncIterator[Estimator]:
    """The service's estimator, its threads stopped when the block ends."""
    estimator = Estimator.from_settings(settings, asset_path)
    try:
        yield estimator
    finally:
        estimator.close()
