"""The ``lipsync-api`` command line (cli/): generate and eval on short real clips, and its error paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from lipsync_api.cli.main import app
from lipsync_api.engine.media import probe
from tests.support import media_factory as mf
from tests.support.real_media import require_shared_media, trim_media

CLIP_SECONDS = 1.5
LONG_SPEECH_SECONDS = 2.5  # longer than the clip: --sync-mode loop repeats the video
SECOND_SPEECH_SECONDS = 0.8
FPS = 25  # vrt_face3's rate
ONE_FRAME = 1 / FPS
REPORT_KEYS = {"best_lag", "correlation_at_zero", "silent_closed_share", "ssim_outside_mouth"}

runner = CliRunner()


def flat(result: Result) -> str:
    """Everything the command printed, with rich's line wrapping undone."""
    return " ".join(result.output.split())


def squashed(result: Result) -> str:
    """Everything printed without any whitespace: rich folds words longer than the line (long paths)."""
    return "".join(result.output.split())


def assert_clean_exit(result: Result, code: int) -> None:
    """Exited with ``code`` through typer/SystemExit (not an escaped exception), and printed no traceback."""
    assert result.exit_code == code, result.output
    if code:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output


def run(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LIPSYNC_DATA_DIR for every command of this module (one analysis cache, shared by them)."""
    return tmp_path_factory.mktemp("lipsync-data")


@pytest.fixture(scope="module")
def environment(data_dir: Path) -> Iterator[None]:
    """Only LIPSYNC_DATA_DIR is set among the LIPSYNC_* variables (none leaks in from the shell)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.upper().startswith("LIPSYNC_") and not name.upper().startswith("LIPSYNC_TEST_"):
                patch.delenv(name)
        patch.setenv("LIPSYNC_DATA_DIR", str(data_dir))
        yield


@pytest.fixture(autouse=True)
def _use_environment(environment: None) -> None:
    """Every test of the module runs in that environment."""


@pytest.fixture(scope="module")
def media() -> Path:
    return require_shared_media()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-clips")


@pytest.fixture(scope="module")
def face_clip(media: Path, clips: Path) -> Path:
    """vrt_face3 (frontal speaker, 25 fps, 590x590), first 1.5 s."""
    return trim_media(media / "vrt_face3.mp4", clips / "face3.mp4", CLIP_SECONDS)


@pytest.fixture(scope="module")
def speech(media: Path, clips: Path) -> Path:
    """English speech, 1.5 s (as long as the clip)."""
    return trim_media(media / "sadtalker_RD_Radio31_000_en.wav", clips / "speech.m4a", CLIP_SECONDS)


@pytest.fixture(scope="module")
def long_speech(media: Path, clips: Path) -> Path:
    """English speech, 2.5 s (longer than the clip)."""
    source = media / "sadtalker_RD_Radio31_000_en.wav"
    return trim_media(source, clips / "speech_long.m4a", LONG_SPEECH_SECONDS)


@pytest.fixture(scope="module")
def second_speech(media: Path, clips: Path) -> Path:
    """German speech, 0.8 s (a second track for segments)."""
    return trim_media(media / "sadtalker_deyu_de.wav", clips / "speech_de.m4a", SECOND_SPEECH_SECONDS)


@pytest.fixture(scope="module")
def generated(
    environment: None, face_clip: Path, speech: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Result]:
    """One ``generate`` run (default cut_off), shared by the tests that check or measure its output."""
    output = tmp_path_factory.mktemp("generated") / "out.mp4"
    result = run("generate", "--video", face_clip, "--audio", speech, "-o", output)
    return output, result


@pytest.fixture(scope="module")
def eval_json(generated: tuple[Path, Result], speech: Path, face_clip: Path) -> dict[str, object]:
    output, _ = generated
    result = run("eval", output, "--audio", speech, "--video", face_clip, "--json")
    assert_clean_exit(result, 0)
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report


# --- help and the entry point ------------------------------------------------------------------------


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert_clean_exit(result, 0)
    assert "generate" in result.output
    assert "eval" in result.output


def test_no_arguments_shows_help() -> None:
    result = run()
    assert "generate" in result.output and "eval" in result.output
    assert "Traceback" not in result.output


def test_generate_help_lists_its_options() -> None:
    result = run("generate", "--help")
    assert_clean_exit(result, 0)
    for option in ("--video", "--audio", "--output", "--sync-mode", "--segments", "--temperature"):
        assert option in result.output


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "lipsync-api"
    assert script.is_file(), f"{script} missing: the package's console script is not installed"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "generate" in done.stdout and "eval" in done.stdout


# --- generate ----------------------------------------------------------------------------------------


def test_generate_writes_an_h264_aac_mp4(generated: tuple[Path, Result], face_clip: Path) -> None:
    output, result = generated
    assert_clean_exit(result, 0)
    assert output.is_file() and output.stat().st_size > 0
    info = probe(output)
    assert info.video is not None and info.video.codec == "h264"
    assert info.audio is not None and info.audio.codec == "aac"
    source = probe(face_clip).video
    assert source is not None
    assert (info.video.width, info.video.height) == (source.width, source.height)
    assert info.video.frame_count == pytest.approx(source.frame_count, abs=1)


def test_generate_prints_a_summary(generated: tuple[Path, Result]) -> None:
    output, result = generated
    text = flat(result)
    assert "realtime factor" in text
    assert "duration" in text
    assert str(output) in squashed(result)


def test_generate_caches_the_analysis_in_the_data_dir(generated: tuple[Path, Result], data_dir: Path) -> None:
    _, result = generated
    assert_clean_exit(result, 0)
    cache = data_dir / "cache"
    assert cache.is_dir() and any(cache.iterdir()), "no analysis stored under LIPSYNC_DATA_DIR/cache"


def test_generate_loop_lasts_as_long_as_the_audio(face_clip: Path, long_speech: Path, tmp_path: Path) -> None:
    output = tmp_path / "looped.mp4"
    result = run(
        "generate", "--video", face_clip, "--audio", long_speech, "--sync-mode", "loop", "-o", output
    )  # fmt: skip
    assert_clean_exit(result, 0)
    info, audio = probe(output), probe(long_speech).audio
    assert info.video is not None and audio is not None
    video_seconds = info.video.frame_count / float(info.video.fps)
    assert video_seconds == pytest.approx(audio.duration, abs=2 * ONE_FRAME)
    assert info.duration == pytest.approx(audio.duration, abs=0.1)
    assert video_seconds > CLIP_SECONDS + 0.5  # really longer than the source clip


def test_generate_with_segments(face_clip: Path, speech: Path, second_speech: Path, tmp_path: Path) -> None:
    segments = tmp_path / "seg.json"
    segments.write_text(
        json.dumps(
            [
                {"startTime": 0.0, "endTime": 0.7, "audioInput": {"refId": "a1"}},
                {
                    "startTime": 0.8,
                    "endTime": 1.4,
                    "audioInput": {"refId": "a2", "startTime": 0.1, "endTime": 0.7},
                },
            ]
        )
    )
    output = tmp_path / "segmented.mp4"
    result = run(
        "generate", "--video", face_clip, "--segments", segments,
        "--audio", f"a1={speech}", "--audio", f"a2={second_speech}", "-o", output,
    )  # fmt: skip
    assert_clean_exit(result, 0)
    info, source = probe(output), probe(face_clip)
    assert info.video is not None and source.video is not None and info.audio is not None
    assert info.video.codec == "h264" and info.audio.codec == "aac"
    # with segments the output follows the video once
    assert info.video.frame_count == pytest.approx(source.video.frame_count, abs=1)


# --- generate: errors --------------------------------------------------------------------------------


def test_text_file_as_video_fails_cleanly(speech: Path, tmp_path: Path) -> None:
    video = mf.write_text(tmp_path / "not_a_video.mp4")
    output = tmp_path / "out.mp4"
    result = run("generate", "--video", video, "--audio", speech, "-o", output)
    assert_clean_exit(result, 1)
    assert flat(result).startswith("error")
    assert "decodable" in flat(result)
    assert not output.exists()


def test_text_file_as_video_names_the_error_code(speech: Path, tmp_path: Path) -> None:
    video = mf.write_text(tmp_path / "not_a_video.mp4")
    result = run("generate", "--video", video, "--audio", speech, "-o", tmp_path / "out.mp4")
    assert_clean_exit(result, 1)
    assert "error [generation_media_unsupported]" in flat(result)


def test_two_audios_without_segments_are_refused(tmp_path: Path) -> None:
    result = run(
        "generate", "--video", "v.mp4", "--audio", "a.wav", "--audio", "b.wav", "-o", tmp_path / "out.mp4"
    )
    assert_clean_exit(result, 2)
    assert "exactly one --audio" in flat(result)
    assert "--segments" in flat(result)


def test_segments_need_refids(tmp_path: Path) -> None:
    segments = tmp_path / "seg.json"
    segments.write_text(json.dumps([{"startTime": 0, "endTime": 1, "audioInput": {"refId": "a1"}}]))
    result = run("generate", "--video", "v.mp4", "--segments", segments, "--audio", "a.wav", "-o", "o.mp4")
    assert_clean_exit(result, 2)
    assert "REFID=PATH" in flat(result)


@pytest.mark.parametrize("temperature", ["2", "-0.1"])
def test_temperature_out_of_range_is_refused(temperature: str, tmp_path: Path) -> None:
    result = run(
        "generate", "--video", "v.mp4", "--audio", "a.wav", "--temperature", temperature,
        "-o", tmp_path / "out.mp4",
    )  # fmt: skip
    assert_clean_exit(result, 2)
    assert "--temperature must be between 0 and 1" in flat(result)


def test_malformed_segments_json_names_the_file(tmp_path: Path) -> None:
    segments = tmp_path / "broken_segments.json"
    segments.write_text('[{"startTime": 0, "endTime": ')
    result = run("generate", "--video", "v.mp4", "--segments", segments, "--audio", "a1=a.wav", "-o", "o.mp4")
    assert_clean_exit(result, 2)
    assert str(segments) in squashed(result)
    assert "--segments" in flat(result)


@pytest.mark.parametrize(
    "content",
    ['{"startTime": 0}', '[{"startTime": 0, "endTime": 1}]', '[{"startTime": "x", "endTime": 1}]'],
    ids=["not-a-list", "no-audio-input", "bad-number"],
)
def test_segments_of_the_wrong_shape_are_refused(content: str, tmp_path: Path) -> None:
    segments = tmp_path / "shape.json"
    segments.write_text(content)
    result = run("generate", "--video", "v.mp4", "--segments", segments, "--audio", "a1=a.wav", "-o", "o.mp4")
    assert_clean_exit(result, 2)
    assert flat(result).startswith("error")


def test_unknown_sync_mode_is_refused(tmp_path: Path) -> None:
    result = run("generate", "--video", "v.mp4", "--audio", "a.wav", "--sync-mode", "stretch", "-o", "o.mp4")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_invalid_setting_fails_cleanly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIPSYNC_ENCODE_CRF", "60")
    result = run("generate", "--video", "v.mp4", "--audio", "a.wav", "-o", tmp_path / "out.mp4")
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "encode_crf" in flat(result)


# --- eval --------------------------------------------------------------------------------------------


def test_eval_json_has_the_measurements(eval_json: dict[str, object]) -> None:
    assert set(eval_json) >= REPORT_KEYS


def test_eval_json_values_are_sane(eval_json: dict[str, object], generated: tuple[Path, Result]) -> None:
    output, _ = generated
    out_video = probe(output).video
    assert out_video is not None
    best_lag, at_zero = eval_json["best_lag"], eval_json["correlation_at_zero"]
    ssim = eval_json["ssim_outside_mouth"]
    assert isinstance(best_lag, int) and abs(best_lag) <= 8
    assert isinstance(at_zero, float) and -1.0 <= at_zero <= 1.0
    assert at_zero > 0.2, "the generated mouth should follow the speech it was made from"
    assert isinstance(ssim, float) and 0.9 <= ssim <= 1.0
    closed = eval_json["silent_closed_share"]
    assert closed is None or (isinstance(closed, float) and 0.0 <= closed <= 1.0)
    assert eval_json["frames"] == out_video.frame_count
    assert eval_json["face_frames"] == eval_json["frames"]


def test_eval_table_mentions_ssim(generated: tuple[Path, Result], speech: Path, face_clip: Path) -> None:
    output, _ = generated
    result = run("eval", output, "--audio", speech, "--video", face_clip)
    assert_clean_exit(result, 0)
    text = flat(result)
    assert "SSIM" in text
    assert "best lag" in text and "correlation at lag 0" in text


def test_eval_of_a_missing_output_is_refused(tmp_path: Path) -> None:
    result = run("eval", tmp_path / "nothing.mp4", "--audio", tmp_path / "nothing.wav")
    assert result.exit_code == 2
    assert "Traceback" not in result.output
