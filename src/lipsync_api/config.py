"""Settings: one typed object read from LIPSYNC_* variables, validated at start-up, built by a factory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lipsync_api.domain.models_catalog import BUILTIN_ENGINE_NAME, default_model_engines
from lipsync_api.domain.plans import plan_table
from lipsync_api.engine.request import EngineConfig, FetchLimits
from lipsync_api.store.database import sqlite_url

X264Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]
# Defaults only: set LIPSYNC_MODEL_PRICES to your own prices (USD per second of output).
DEFAULT_MODEL_PRICES = {
    "lipsync-1.9.0-beta": 0.04,
    "lipsync-2": 0.05,
    "lipsync-2-pro": 0.0833,
    "sync-3": 0.1,
    "lipsync-api": 0.05,
}
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]


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
    model_prices: dict[str, Price] = Field(
        default_factory=lambda: dict(DEFAULT_MODEL_PRICES),
        description="JSON mapping each model name to its USD price per second of output (cost estimates).",
    )
    estimate_timeout_seconds: float = Field(
        20.0, gt=0, description="Time budget of the media probes of one cost estimate or batch dry run."
    )
    estimate_cache_ttl_seconds: float = Field(
        3600.0, ge=0, description="Seconds a probed URL's durations are reused by estimates (0: never)."
    )
    estimate_cache_max_entries: int = Field(
        10000, ge=0, description="Most probed URLs remembered for estimates."
    )
    estimate_sample_size: int = Field(
        32,
        ge=0,
        description="Most distinct media URLs a batch dry run probes; lines it did not probe get the mean "
        "estimate of the probed lines with the same video (0: probe every URL).",
    )

    auth_cache_seconds: float = Field(
        10.0,
        ge=0,
        description="Seconds an API key's organization is reused without a database lookup (0: never); "
        "a key revoked by another process is refused within this time.",
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy async URL; default: SQLite (WAL) at <data_dir>/lipsync.db."
    )
    host: str = Field("127.0.0.1", description="Address `serve` listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port `serve` listens on.")
    public_base_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="Base of the signed URLs handed out; default: http://<host>:<port>.",
    )
    url_signing_secret: SecretStr | None = Field(
        None,
        min_length=32,
        description="Key of signed download URLs; default: generated once and kept in <data_dir>.",
    )
    output_url_ttl_seconds: int = Field(7 * 24 * 3600, gt=0, description="Lifetime of a signed URL, seconds.")
    retention_hours: float = Field(
        720.0,
        ge=0,
        description="Stored outputs, results files and uploads older than this many hours are deleted; "
        "0 keeps them forever.",
    )
    worker_count: int = Field(1, ge=1, le=256, description="Generations the server runs at once.")
    lease_seconds: float = Field(
        60.0, gt=0, description="Lease on a running generation; renewed while it runs."
    )
    max_attempts: int = Field(3, ge=1, le=20, description="Attempts per generation (transient failures).")
    batch_max_requests: int = Field(1000, ge=1, description="Most requests in one batch file.")
    batch_max_bytes: int = Field(5 * 1024**2, ge=1, description="Largest batch file, bytes.")
    upload_max_bytes: int = Field(
        512 * 1024**2,
        gt=0,
        description="Largest media file uploaded to POST /v2/generate (multipart), bytes.",
    )
    batch_expiry_hours: float = Field(
        24.0, gt=0, description="Hours after which an unfinished batch expires."
    )
    webhook_connect_timeout: float = Field(5.0, gt=0, description="Seconds to connect to a webhook receiver.")
    webhook_read_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a webhook response.")
    webhook_max_attempts: int = Field(8, ge=1, le=50, description="Delivery attempts per webhook.")
    webhook_retry_base_seconds: float = Field(
        10.0, gt=0, description="Wait before a webhook's second attempt; it doubles after each failure."
    )
    webhook_retry_max_seconds: float = Field(
        3600.0, gt=0, description="Longest wait between webhook attempts."
    )
    webhook_allow_private_addresses: bool = Field(
        False, description="Allow webhook URLs on loopback/private addresses (tests only)."
    )
    bootstrap_api_key: SecretStr | None = Field(
        None,
        min_length=16,
        description="API key of the default organization made on an empty database (else one is generated).",
    )
    model_engines: dict[str, str] = Field(
        default_factory=default_model_engines,
        min_length=1,
        description="JSON mapping each served model name to the engine that renders it; "
        f"the only engine is {BUILTIN_ENGINE_NAME!r}.",
    )
    plan_limits: dict[str, dict[str, int | bool]] = Field(
        default_factory=dict,
        description="JSON overriding plans' limits, e.g. "
        '{"growth": {"concurrent_generations": 10, "concurrent_batches": 3, "batches_allowed": true}}; '
        "unnamed plans and fields keep their defaults.",
    )
    shutdown_grace_seconds: float = Field(
        10.0,
        ge=0,
        description="On stop, seconds to let running generations finish (leases bring back the rest).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest level `serve` logs."
    )
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="Log lines as JSON, as text, or auto: text on a terminal, else JSON."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        plan_table(self.plan_limits)  # raises naming an unknown plan or field
        unknown = sorted(set(self.model_engines.values()) - {BUILTIN_ENGINE_NAME})
        if unknown:
            raise ValueError(
                f"model_engines: unknown engine(s) {', '.join(unknown)}; use {BUILTIN_ENGINE_NAME!r}"
            )
        if 2 * (self.webhook_connect_timeout + self.webhook_read_timeout) >= 120:
            raise ValueError("webhook_connect_timeout + webhook_read_timeout must stay under 60 seconds")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, the SQLite file in the data folder when none is set."""
        return self.database_url or sqlite_url(self.data_dir / "lipsync.db")

    @property
    def base_url(self) -> str:
        """Where clients reach this server: ``public_base_url``, or the address it listens on."""
        return (self.public_base_url or f"http://{self.host}:{self.port}").rstrip("/")

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
