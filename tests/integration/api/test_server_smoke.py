"""The real server: ``python -m lipsync_api serve`` on a free loopback port, fresh data folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import running_server

KEY = "lsk_smoke_test_key_0123456789"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A server process bound to 127.0.0.1, stopped by its PID."""
    with running_server(tmp_path, KEY, ready_timeout=60) as running:
        yield running.base


def test_server_answers_with_the_bootstrap_key(server: str) -> None:
    assert httpx.get(f"{server}/v2/models", timeout=5).status_code == 401
    response = httpx.get(f"{server}/v2/models", headers={"x-api-key": KEY}, timeout=5)
    assert response.status_code == 200
    assert "lipsync-2" in [model["id"] for model in response.json()]
