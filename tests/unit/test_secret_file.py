"""The URL-signing secret is generated once and survives restarts; the settings refuse short secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from lipsync_api.config import Settings
from lipsync_api.secret_file import SECRET_FILE_NAME, load_or_create_secret


def test_secret_is_created_once_and_kept(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path / "data")
    assert len(first) >= 32 and load_or_create_secret(tmp_path / "data") == first
    assert (tmp_path / "data" / SECRET_FILE_NAME).stat().st_mode & 0o077 == 0
    assert load_or_create_secret(tmp_path / "other") != first


def test_settings_defaults_and_refusals(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url.endswith(str((tmp_path / "lipsync.db").resolve()))
    assert settings.url_signing_secret is None and settings.batch_max_bytes == 5 * 1024**2
    with pytest.raises(ValidationError):
        Settings(url_signing_secret="short")
    with pytest.raises(ValidationError):
        Settings(public_base_url="ftp://x")
