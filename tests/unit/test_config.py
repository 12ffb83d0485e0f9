"""Settings (config.py): defaults, LIPSYNC_* overrides, validation, and the engine's view of them."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from lipsync_api.config import Settings, load_settings
from lipsync_api.engine.request import EngineConfig, FetchLimits

# Every setting with a value unlike its default (and its environment spelling), so a mapping that drops
# or swaps a field shows up.
CUSTOM: dict[str, tuple[Any, str]] = {
    "data_dir": (Path("/srv/lipsync"), "/srv/lipsync"),
    "fetch_max_bytes": (1234567, "1234567"),
    "fetch_connect_timeout": (2.5, "2.5"),
    "fetch_read_timeout": (7.5, "7.5"),
    "fetch_max_redirects": (3, "3"),
    "fetch_allow_private_addresses": (True, "true"),
    "max_video_seconds": (120.0, "120"),
    "max_audio_seconds": (90.0, "90"),
    "max_fps": (30, "30"),
    "encode_preset": ("slow", "slow"),
    "encode_crf": (23, "23"),
    "analysis_cache_max_bytes": (1024, "1024"),
    "model_prices": ({"lipsync-2": 0.07}, '{"lipsync-2": 0.07}'),
    "estimate_timeout_seconds": (5.0, "5"),
    "estimate_cache_ttl_seconds": (60.0, "60"),
    "estimate_cache_max_entries": (50, "50"),
    "estimate_sample_size": (8, "8"),
    "auth_cache_seconds": (0.0, "0"),
    "database_url": ("postgresql+asyncpg://db/lipsync", "postgresql+asyncpg://db/lipsync"),
    "host": ("0.0.0.0", "0.0.0.0"),
    "port": (9000, "9000"),
    "public_base_url": ("https://lipsync.example.com", "https://lipsync.example.com"),
    "url_signing_secret": (SecretStr("s" * 40), "s" * 40),
    "output_url_ttl_seconds": (600, "600"),
    "worker_count": (4, "4"),
    "lease_seconds": (30.0, "30"),
    "max_attempts": (5, "5"),
    "batch_max_requests": (10, "10"),
    "batch_max_bytes": (2048, "2048"),
    "upload_max_bytes": (4096, "4096"),
    "batch_expiry_hours": (2.0, "2"),
    "webhook_connect_timeout": (1.0, "1"),
    "webhook_read_timeout": (2.0, "2"),
    "webhook_max_attempts": (3, "3"),
    "webhook_retry_base_seconds": (0.5, "0.5"),
    "webhook_retry_max_seconds": (60.0, "60"),
    "webhook_allow_private_addresses": (True, "true"),
    "bootstrap_api_key": (SecretStr("k" * 20), "k" * 20),
    "model_engines": ({"lipsync-2": "lipsync-api"}, '{"lipsync-2": "lipsync-api"}'),
    "plan_limits": (
        {"growth": {"concurrent_batches": 4}},
        '{"growth": {"concurrent_batches": 4}}',
    ),
    "retention_hours": (48.0, "48"),
    "shutdown_grace_seconds": (1.0, "1"),
    "log_level": ("DEBUG", "DEBUG"),
    "log_format": ("json", "json"),
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No LIPSYNC_* variable of the caller's shell leaks in; a stray .env file in the cwd is not read."""
    for name in list(os.environ):
        if name.upper().startswith("LIPSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_custom_values_cover_every_setting() -> None:
    assert set(CUSTOM) == set(Settings.model_fields)
    defaults = Settings()
    for name, (value, _) in CUSTOM.items():
        assert getattr(defaults, name) != value, name


def test_defaults() -> None:
    settings = load_settings()
    assert settings.data_dir == Path("lipsync-data")
    assert settings.fetch_max_bytes == 536870912
    assert settings.fetch_connect_timeout == 10
    assert settings.fetch_read_timeout == 60
    assert settings.fetch_max_redirects == 5
    assert settings.fetch_allow_private_addresses is False
    assert settings.max_video_seconds == 600
    assert settings.max_audio_seconds == 600
    assert settings.max_fps == 60
    assert settings.encode_preset == "veryfast"
    assert settings.encode_crf == 18
    assert settings.analysis_cache_max_bytes == 2147483648
    assert settings.cache_dir == Path("lipsync-data") / "cache"


@pytest.mark.parametrize("name", sorted(CUSTOM))
def test_environment_variable_overrides_the_default(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    value, spelling = CUSTOM[name]
    monkeypatch.setenv(f"LIPSYNC_{name.upper()}", spelling)
    assert getattr(load_settings(), name) == value


def test_all_environment_variables_together(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, (_, spelling) in CUSTOM.items():
        monkeypatch.setenv(f"LIPSYNC_{name.upper()}", spelling)
    settings = load_settings()
    assert {name: getattr(settings, name) for name in CUSTOM} == {n: v for n, (v, _) in CUSTOM.items()}


def test_explicit_override_beats_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIPSYNC_ENCODE_CRF", "30")
    assert load_settings(encode_crf=20).encode_crf == 20


def test_unprefixed_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCODE_CRF", "30")
    monkeypatch.setenv("MAX_FPS", "24")
    settings = load_settings()
    assert (settings.encode_crf, settings.max_fps) == (18, 60)


INVALID = [
    ("fetch_max_bytes", "-1"),
    ("fetch_max_bytes", "0"),
    ("encode_crf", "60"),
    ("encode_crf", "-1"),
    ("encode_preset", "warpspeed"),
    ("max_fps", "0"),
    ("max_fps", "121"),
    ("fetch_connect_timeout", "0"),
    ("fetch_read_timeout", "-5"),
    ("fetch_max_redirects", "-1"),
    ("max_video_seconds", "0"),
    ("max_audio_seconds", "-1"),
    ("analysis_cache_max_bytes", "-1"),
    ("fetch_allow_private_addresses", "maybe"),
    ("max_fps", "fast"),
    ("port", "0"),
    ("public_base_url", "ftp://example.com"),
    ("url_signing_secret", "short"),
    ("bootstrap_api_key", "short"),
    ("worker_count", "0"),
    ("batch_max_bytes", "0"),
    ("upload_max_bytes", "0"),
    ("webhook_read_timeout", "0"),
]


@pytest.mark.parametrize(("name", "spelling"), INVALID)
def test_invalid_environment_value_is_rejected(
    monkeypatch: pytest.MonkeyPatch, name: str, spelling: str
) -> None:
    monkeypatch.setenv(f"LIPSYNC_{name.upper()}", spelling)
    with pytest.raises(ValidationError) as caught:
        load_settings()
    assert name in str(caught.value)


@pytest.mark.parametrize(
    "overrides",
    [{"fetch_max_bytes": -1}, {"encode_crf": 60}, {"encode_preset": "warpspeed"}, {"max_fps": 0}],
    ids=["negative-fetch-max-bytes", "crf-60", "unknown-preset", "max-fps-0"],
)
def test_invalid_explicit_value_is_rejected(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        load_settings(**overrides)
    assert next(iter(overrides)) in str(caught.value)


def test_boundary_values_are_accepted() -> None:
    settings = load_settings(
        encode_crf=0, max_fps=1, fetch_max_redirects=0, analysis_cache_max_bytes=0, encode_preset="ultrafast"
    )
    assert (settings.encode_crf, settings.max_fps, settings.fetch_max_redirects) == (0, 1, 0)
    assert load_settings(encode_crf=51, max_fps=120, fetch_max_redirects=20).encode_crf == 51


def test_engine_config_maps_every_field() -> None:
    settings = load_settings(**{name: value for name, (value, _) in CUSTOM.items()})
    assert settings.engine_config() == EngineConfig(
        fetch=FetchLimits(
            max_bytes=1234567,
            connect_timeout=2.5,
            read_timeout=7.5,
            max_redirects=3,
            allow_private_addresses=True,
        ),
        max_video_seconds=120.0,
        max_audio_seconds=90.0,
        max_fps=30,
        encode_preset="slow",
        encode_crf=23,
        cache_dir=Path("/srv/lipsync/cache"),
        cache_max_bytes=1024,
    )


def test_engine_config_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIPSYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LIPSYNC_FETCH_MAX_BYTES", "999")
    monkeypatch.setenv("LIPSYNC_FETCH_ALLOW_PRIVATE_ADDRESSES", "1")
    config = load_settings().engine_config()
    assert config.cache_dir == tmp_path / "data" / "cache"
    assert config.fetch.max_bytes == 999
    assert config.fetch.allow_private_addresses is True


def test_default_settings_give_the_engine_defaults() -> None:
    config = load_settings().engine_config()
    assert config.cache_dir == Path("lipsync-data") / "cache"
    assert dataclasses.replace(config, cache_dir=None) == EngineConfig()
