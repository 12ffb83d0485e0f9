"""probe_url against a real HTTP host on 127.0.0.1: with and without Range support, redirects, failures."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lipsync_api.engine import probe_url as probe_module
from lipsync_api.engine.media import MediaInfo, probe
from lipsync_api.engine.probe_url import probe_url
from lipsync_api.engine.request import FetchLimits
from lipsync_api.errors import ErrorCode, GenerationError
from tests.support import media_factory as mf
from tests.support.media_server import MediaHost, media_host

LIMITS = FetchLimits(
    max_bytes=64 * 1024**2, connect_timeout=5, read_timeout=10, max_redirects=3, allow_private_addresses=True
)
MAX_FPS = 60
LONG_WAV = "long.wav"  # 20 s: far more than the probe needs to read
LONG_MP4 = "long.mp4"  # ~0.5 MB with its moov at the end: a probe must ask for more than the first blocks


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaHost]:
    folder = tmp_path_factory.mktemp("probe-media")
    mf.write_video(folder / "clip.mp4", frames=50, audio_seconds=2.0)  # moov at the end: ranges must seek
    mf.write_video(folder / "fast.mp4", frames=30, fps=30, faststart=True)
    mf.write_video_format(folder / "clip", "webm_vp9", frames=25, audio_seconds=1.0)
    mf.write_vfr_video(folder / "vfr.mp4")
    mf.write_video(folder / "highrate.mp4", frames=40, fps=100)  # above max_fps: capped as the engine does
    for name in ("wav16", "mp3", "m4a_aac", "ogg_opus", "flac"):
        mf.write_audio_format(folder / f"speech_{name}", name, mf.tone(3.0, 48000), 48000)
    mf.write_audio(folder / LONG_WAV, mf.tone(20.0, 48000), 48000)
    mf.write_video(folder / LONG_MP4, frames=500, width=640, height=360, audio_seconds=20.0)
    (folder / "notes.txt").write_text("not media at all\n" * 100)
    (folder / "empty.wav").write_bytes(b"")
    with media_host(folder) as running:
        yield running


def timing(info: MediaInfo) -> tuple[object, ...]:
    """What estimates use (and the size, orientation aside)."""
    video = info.video
    video_part = (
        (video.fps, video.frame_count, video.duration, sorted((video.width, video.height))) if video else None
    )
    return video_part, info.audio.duration if info.audio else None


MEDIA = [
    "clip.mp4",
    "fast.mp4",
    "clip.webm",
    "vfr.mp4",
    "highrate.mp4",
    "speech_wav16.wav",
    "speech_mp3.mp3",
    "speech_m4a_aac.m4a",
    "speech_ogg_opus.ogg",
    "speech_flac.flac",
    LONG_WAV,
    LONG_MP4,
]


@pytest.mark.parametrize("name", MEDIA)
@pytest.mark.parametrize("route", ["r", "plain"])
def test_probe_url_reports_what_the_engine_probe_does(host: MediaHost, route: str, name: str) -> None:
    expected = probe(host.folder / name, MAX_FPS)
    assert timing(probe_url(host.url(route, name), LIMITS, MAX_FPS)) == timing(expected)


def test_the_rate_is_capped_at_max_fps(host: MediaHost) -> None:
    info = probe_url(host.url("r", "highrate.mp4"), LIMITS, 25)
    assert info.video is not None and info.video.fps == 25 and info.video.frame_count == 10  # 0.4 s


def test_ranges_read_the_headers_not_the_file(host: MediaHost) -> None:
    host.clear()
    probe_url(host.url("r", LONG_WAV), LIMITS, MAX_FPS)
    served = host.served(LONG_WAV)
    size = (host.folder / LONG_WAV).stat().st_size
    assert served and all(s.status == 206 for s in served)
    assert sum(s.sent for s in served) < size / 2


def test_without_range_support_one_whole_download(host: MediaHost) -> None:
    host.clear()
    probe_url(host.url("plain", LONG_WAV), LIMITS, MAX_FPS)
    served = host.served(LONG_WAV)
    assert [(s.status, s.sent) for s in served] == [(200, (host.folder / LONG_WAV).stat().st_size)]


def test_a_wav_is_probed_from_its_first_request(host: MediaHost) -> None:
    host.clear()
    probe_url(host.url("r", LONG_WAV), LIMITS, MAX_FPS)
    assert len(host.served(LONG_WAV)) == 1  # its header states the duration: no stream analysis


def test_a_host_that_stops_honouring_ranges_gets_the_engine_download(host: MediaHost) -> None:
    host.clear()
    info = probe_url(host.url("moody", LONG_MP4), LIMITS, MAX_FPS)
    assert timing(info) == timing(probe(host.folder / LONG_MP4, MAX_FPS))
    assert [s.status for s in host.served(LONG_MP4)][-1] == 200


def test_redirects_are_followed_and_ranges_go_to_the_target(host: MediaHost) -> None:
    host.clear()
    info = probe_url(host.url("go", "r/clip.mp4"), LIMITS, MAX_FPS)
    assert info.video is not None and info.video.frame_count == 50
    paths = [s.path for s in host.served()]
    assert paths[0] == "/go/r/clip.mp4" and all(path == "/r/clip.mp4" for path in paths[1:])


def test_headers_without_durations_fall_back_to_the_whole_file(
    host: MediaHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe_module, "probe_headers", lambda source, max_fps: None)
    info = probe_url(host.url("r", "clip.mp4"), LIMITS, MAX_FPS)
    assert timing(info) == timing(probe(host.folder / "clip.mp4", MAX_FPS))


@pytest.mark.parametrize("route", ["r", "plain"])
def test_a_missing_file_is_a_fetch_failure_naming_the_url(host: MediaHost, route: str) -> None:
    with pytest.raises(GenerationError) as raised:
        probe_url(host.url(route, "absent.wav") + "?token=secret", LIMITS, MAX_FPS)
    assert raised.value.code is ErrorCode.MEDIA_FETCH_FAILED
    assert raised.value.message == f"could not fetch {host.url(route, 'absent.wav')}: HTTP 404"


@pytest.mark.parametrize("route", ["r", "plain"])
def test_text_is_not_media(host: MediaHost, route: str) -> None:
    with pytest.raises(GenerationError) as raised:
        probe_url(host.url(route, "notes.txt"), LIMITS, MAX_FPS)
    assert raised.value.code is ErrorCode.MEDIA_UNSUPPORTED


def test_an_empty_file_is_not_media(host: MediaHost) -> None:
    with pytest.raises(GenerationError) as raised:
        probe_url(host.url("r", "empty.wav"), LIMITS, MAX_FPS)
    assert raised.value.code is ErrorCode.MEDIA_UNSUPPORTED


@pytest.mark.parametrize("route", ["r", "plain"])
def test_the_size_cap_holds(host: MediaHost, route: str) -> None:
    small = FetchLimits(max_bytes=100_000, allow_private_addresses=True)
    with pytest.raises(GenerationError, match="exceeds the 100000 bytes limit") as raised:
        probe_url(host.url(route, LONG_WAV), small, MAX_FPS)
    assert raised.value.code is ErrorCode.MEDIA_FETCH_FAILED


def test_private_addresses_are_refused_by_default(host: MediaHost) -> None:
    with pytest.raises(GenerationError, match="private address") as raised:
        probe_url(host.url("r", "clip.mp4"), FetchLimits(), MAX_FPS)
    assert raised.value.code is ErrorCode.MEDIA_FETCH_FAILED
    assert host.url("r", "clip.mp4") in raised.value.message


@pytest.mark.parametrize("url", ["file:///etc/passwd", "/etc/passwd", "ftp://example.com/a.wav"])
def test_only_http_urls(url: str) -> None:
    with pytest.raises(GenerationError) as raised:
        probe_url(url, LIMITS, MAX_FPS)
    assert raised.value.code is ErrorCode.MEDIA_FETCH_FAILED


def test_a_passed_deadline_stops_further_range_requests(host: MediaHost) -> None:
    with pytest.raises(GenerationError, match="time limit") as raised:
        probe_url(host.url("r", LONG_MP4), LIMITS, MAX_FPS, deadline=time.monotonic() - 1)
    assert raised.value.code is ErrorCode.MEDIA_FETCH_FAILED


@pytest.mark.media
def test_real_clips(host: MediaHost, face3_clip: Path, speech_en: Path) -> None:
    for clip in (face3_clip, speech_en):
        shutil.copy(clip, host.folder / clip.name)
        found = probe_url(host.url("r", clip.name), LIMITS, MAX_FPS)
        assert timing(found) == timing(probe(clip, MAX_FPS))
