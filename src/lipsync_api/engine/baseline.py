"""The quality baseline: the source video, untouched, with the new speech simply muxed in."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np

from lipsync_api.engine.media import decode_audio, output_audio_format, probe

_LAYOUTS = {1: "mono", 2: "stereo"}


def mux_baseline(video: Path, audio: Path, output: Path) -> Path:
    """Copy the video's packets (no re-encode) up to the shorter input's end, with the audio as AAC."""
    audio_info = probe(audio).audio
    assert audio_info is not None
    rate, channels = output_audio_format(audio_info)
    samples = decode_audio(audio, rate, channels)
    with av.open(str(video)) as source, av.open(str(output), "w", format="mp4") as out:
        in_video = source.streams.video[0]
        time_base = cast(Fraction, in_video.time_base)  # typed optional; a demuxed stream has one
        video_seconds = float(in_video.duration * time_base) if in_video.duration else float("inf")
        end = min(video_seconds, samples.shape[1] / rate)
        out_video = out.add_stream_from_template(in_video)
        out_audio = out.add_stream("aac", rate=rate, layout=_LAYOUTS[channels])
        for packet in source.demux(in_video):
            if packet.dts is None or packet.pts is None or float(packet.pts * time_base) >= end:
                continue
            packet.stream = out_video
            out.mux(packet)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples[:, : round(end * rate)]), format="fltp", layout=_LAYOUTS[channels]
        )
        frame.sample_rate = rate
        out.mux(out_audio.encode(frame))
        out.mux(out_audio.encode(None))
    return output
