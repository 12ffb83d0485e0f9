"""Rows for store tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from lipsync_api.store.models import Batch, Generation

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """A fixed instant ``seconds`` after T0 (tests pass time explicitly)."""
    return T0 + timedelta(seconds=seconds)


def request_body(audio: str = "https://example.com/a.wav") -> dict[str, Any]:
    """A CreateGenerationDto as received."""
    return {
        "model": "lipsync-2",
        "input": [{"type": "video", "url": "https://example.com/v.mp4"}, {"type": "audio", "url": audio}],
        "options": {"sync_mode": "cut_off"},
    }


def generation(organization_id: str, **fields: Any) -> Generation:
    """An interactive generation; ``fields`` override any column."""
    values: dict[str, Any] = {
        "organization_id": organization_id,
        "model": "lipsync-2",
        "request": request_body(),
    }
    values.update(fields)
    return Generation(**values)


def batch_lines(count: int) -> list[Generation]:
    """``count`` batch lines (the batch insert fills in batch and organization)."""
    return [
        Generation(
            model="lipsync-2",
            request=request_body(f"https://example.com/{n}.wav"),
            request_id=f"video_{n:03d}",
            line_no=n,
        )
        for n in range(1, count + 1)
    ]


def batch(organization_id: str, **fields: Any) -> Batch:
    """A batch row; ``fields`` override any column."""
    return Batch(organization_id=organization_id, **fields)
