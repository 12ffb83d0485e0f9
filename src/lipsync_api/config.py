"""Settings: one typed object read from LIPSYNC_* variables, validated at start-up, built by a factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lipsync_api.engine.request import EngineConfig, FetchLimits

X264Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]


class Settings(BaseSettings):
    """Every setting of the service; each maps to an environment variable ``LIPSYNC_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="LIPSYNC_", extra="ignore")

    data_dir: Path = Field(Path("lipsync-data"), description="Folder for the database, outputs and caches.")
    fetch_max_bytes: int = Field(512 * 1024**2, gt=0, description="Largest input download, bytes.")
    fetch_connect_timeout: float = Field(10.0, gt=0, description="Seconds to connect to a media host.")
    fetch_read_timeout: float = Field(60.0, gt=0, description="Seconds without data before a download fails.")
    fetch_max_redirects: int = Field(5, ge=0, le=20, description="Redirects followed per input URL.")
    fetch_allow_private_addresses: bool = Field(
        False, description="Allow input URLs on loopback/private/link-local addresses (tests only)."
    )
    max_video_seconds: float = Field(600.0, gt=0, description="Longest accepted input video, seconds.")
    max_audio_seconds: float = Field(600.0, gt=0, description="Longest accepted input audio, seconds.")
    max_fps: int = Field(
        60, ge=1, le=120, description="Output frame rate cap (input nominal rate above it is reduced)."
    )
    encode_preset: X264Preset = Field("veryfast", description="x264 preset of the output video.")
    encode_crf: int = Field(18, ge=0, le=51, description="x264 constant rate factor of the output video.")
    analysis_cache_max_bytes: int = Field(
        2 * 1024**3,
        ge=0,
        description="Size bound of the per-video analysis cache (face tracks).",
    )

    @property
    def cache_dir(self) -> Path:
        """Where per-video analyses are cached."""
        return self.data_dir / "cache"

    def engine_config(self) -> EngineConfig:
        """The part of the settings the engine sees."""
        return EngineConfig(
            fetch=FetchLimits(
                max_bytes=self.fetch_max_bytes,
                connect_timeout=self.fetch_connect_timeout,
                read_timeout=self.fetch_read_timeout,
                max_redirects=self.fetch_max_redirects,
                allow_private_addresses=self.fetch_allow_private_addresses,
            ),
            max_video_seconds=self.max_video_seconds,
            max_audio_seconds=self.max_audio_seconds,
            max_fps=self.max_fps,
            encode_preset=self.encode_preset,
            encode_crf=self.encode_crf,
            cache_dir=self.cache_dir,
            cache_max_bytes=self.analysis_cache_max_bytes,
        )


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus explicit overrides) into validated Settings."""
    return Settings(**overrides)
