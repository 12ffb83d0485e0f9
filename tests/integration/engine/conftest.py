"""Session fixtures for the engine's integration tests: short real-clip trims, speech, a cache, HTTP."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from fractions import Fraction
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import numpy as np
import pytest
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.stream import VideoStream

from lipsync_api.engine.analysis import AnalysisCache
from tests.support import media_factory as mf

SHARED_MEDIA = (Path(__file__).resolve().parents[3] / ".." / "shared" / "media").resolve()
CLIP_SECONDS = 2.0  # long enough for a sync measurement, short enough to keep the suite fast
SPEECH_SECONDS = 2.5  # longer than the clips
SHORT_SPEECH_SECONDS = 1.3  # shorter than the clips


def _layout(channels: int) -> str:
    return "stereo" if channels >= 2 else "mono"


class _AudioTrim:
    """Re-encodes the first ``seconds`` of an audio stream as AAC, in the encoder's fixed-size frames."""

    def __init__(self, out: OutputContainer, source: AudioStream, seconds: float) -> None:
        rate, self.layout = source.codec_context.sample_rate, _layout(source.codec_context.channels)
        stream = out.add_stream("aac", rate=rate, layout=self.layout)
        assert isinstance(stream, AudioStream)
        stream.codec_context.open()  # to learn the encoder's frame size
        self.out, self.stream, self.rate = out, stream, rate
        self.resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=rate)
        self.fifo = av.AudioFifo()
        self.left = round(seconds * rate)
        self.written = 0

    def add(self, frame: av.AudioFrame) -> None:
        for resampled in self.resampler.resample(frame):
            take = min(resampled.samples, self.left)
            if take <= 0:
                continue
            chunk = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(resampled.to_ndarray()[:, :take]), format="fltp", layout=self.layout
            )
            chunk.sample_rate, chunk.pts, chunk.time_base = self.rate, self.written, Fraction(1, self.rate)
            self.fifo.write(chunk)
            self.left -= take
            self.written += take
        self._drain(partial=False)

    def close(self) -> None:
        self._drain(partial=True)
        self.out.mux(self.stream.encode(None))

    def _drain(self, *, partial: bool) -> None:
        for chunk in self.fifo.read_many(self.stream.codec_context.frame_size, partial=partial):
            self.out.mux(self.stream.encode(chunk))


def _video_trim(out: OutputContainer, source: VideoStream, max_side: int | None) -> VideoStream:
    rate: Fraction = source.guessed_rate or source.average_rate or Fraction(25)
    stream = out.add_stream("libx264", rate=rate, options={"preset": "ultrafast"})
    assert isinstance(stream, VideoStream)
    width, height = source.codec_context.width, source.codec_context.height
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = round(width * scale), round(height * scale)
    stream.width, stream.height, stream.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
    assert source.time_base is not None
    stream.codec_context.time_base = source.time_base  # keeps a variable-rate source's irregular timestamps
    return stream


def trim_media(source: Path, dest: Path, seconds: float, *, max_side: int | None = None) -> Path:
    """The first ``seconds`` of ``source``, re-encoded (libx264 ultrafast / AAC) and optionally downscaled."""
    with av.open(str(source)) as inp, av.open(str(dest), "w") as out:
        video_in = inp.streams.video[0] if inp.streams.video else None
        audio_in = inp.streams.audio[0] if inp.streams.audio else None
        video_out = _video_trim(out, video_in, max_side) if video_in is not None else None
        audio = _AudioTrim(out, audio_in, seconds) if audio_in is not None else None
        for packet in inp.demux([s for s in (video_in, audio_in) if s is not None]):
            for frame in packet.decode():
                if not isinstance(frame, av.VideoFrame | av.AudioFrame) or frame.time is None:
                    continue
                if frame.time >= seconds:
                    continue
                if isinstance(frame, av.VideoFrame) and video_out is not None:
                    scaled = frame.reformat(width=video_out.width, height=video_out.height, format="yuv420p")
                    scaled.pts, scaled.time_base = frame.pts, frame.time_base
                    out.mux(video_out.encode(scaled))
                elif isinstance(frame, av.AudioFrame) and audio is not None:
                    audio.add(frame)
        if video_out is not None:
            out.mux(video_out.encode(None))
        if audio is not None:
            audio.close()
    return dest


# --- real clips --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shared_media() -> Path:
    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"real clips not found: {SHARED_MEDIA} is absent (see ../shared/media/README.md)")
    return SHARED_MEDIA


@pytest.fixture(scope="session")
def clips_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def face3_clip(shared_media: Path, clips_dir: Path) -> Path:
    """vrt_face3: frontal speaker, 25 fps, 590x590, first 2 s."""
    return trim_media(shared_media / "vrt_face3.mp4", clips_dir / "face3.mp4", CLIP_SECONDS)


@pytest.fixture(scope="session")
def face1_vfr_clip(shared_media: Path, clips_dir: Path) -> Path:
    """vrt_face1: variable frame rate (nominal 30), first 2 s, its irregular timestamps kept."""
    return trim_media(shared_media / "vrt_face1.mp4", clips_dir / "face1_vfr.mp4", CLIP_SECONDS)


@pytest.fixture(scope="session")
def small_face_clip(shared_media: Path, clips_dir: Path) -> Path:
    """latentsync_demo1_video: small face in a portrait frame, halved to 540x960, first 2 s."""
    source = shared_media / "latentsync_demo1_video.mp4"
    return trim_media(source, clips_dir / "small_face.mp4", CLIP_SECONDS, max_side=960)


@pytest.fixture(scope="session")
def speech_en(shared_media: Path, clips_dir: Path) -> Path:
    """English male speech, 2.5 s (longer than the clips), AAC."""
    source = shared_media / "sadtalker_RD_Radio31_000_en.wav"
    return trim_media(source, clips_dir / "speech_en.m4a", SPEECH_SECONDS)


@pytest.fixture(scope="session")
def speech_en_short(shared_media: Path, clips_dir: Path) -> Path:
    """English male speech, 1.3 s (shorter than the clips), AAC."""
    source = shared_media / "sadtalker_RD_Radio31_000_en.wav"
    return trim_media(source, clips_dir / "speech_en_short.m4a", SHORT_SPEECH_SECONDS)


# --- synthetic media ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def espeak_speech(clips_dir: Path) -> Path:
    """espeak-ng speech, about 2.6 s (skips when espeak-ng is missing)."""
    return mf.speech_wav(clips_dir / "espeak.wav")


@pytest.fixture(scope="session")
def tone_wav(clips_dir: Path) -> Path:
    """A 1 s tone: audio that is valid but not speech."""
    return mf.write_audio(clips_dir / "tone.wav", mf.tone(1.0, 16000), 16000)


@pytest.fixture(scope="session")
def analysis_cache(tmp_path_factory: pytest.TempPathFactory) -> AnalysisCache:
    """One cache for the session, so each clip is analysed once across tests."""
    return AnalysisCache(tmp_path_factory.mktemp("analysis-cache"), 2 * 1024**3)


# --- a local HTTP server -----------------------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def served_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="session")
def http_base(served_dir: Path) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` serving ``served_dir``'s files (404 for anything else)."""
    handler = functools.partial(_QuietHandler, directory=str(served_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
