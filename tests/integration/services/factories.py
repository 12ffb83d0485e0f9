"""Organizations, request bodies and batch files for service tests."""

from __future__ import annotations

import json
from typing import Any

from lipsync_api.domain.plans import Plan
from lipsync_api.store import Store
from lipsync_api.store.models import Organization


async def make_org(store: Store, plan: Plan = Plan.GROWTH, **overrides: Any) -> Organization:
    """A new organization on ``plan``; ``overrides`` are its cap overrides."""
    return await store.organizations.create(f"org-{plan}", plan, **overrides)


def body(n: int = 1, **fields: Any) -> dict[str, Any]:
    """A valid CreateGenerationDto whose audio URL depends on ``n``; ``fields`` add or replace keys."""
    values: dict[str, Any] = {
        "model": "lipsync-2",
        "input": [
            {"type": "video", "url": "https://example.com/v.mp4"},
            {"type": "audio", "url": f"https://example.com/{n}.wav"},
        ],
        "options": {"sync_mode": "cut_off"},
    }
    values.update(fields)
    return values


def line(request_id: str, payload: object | None = None, endpoint: str = "/v2/generate") -> str:
    """One JSON Lines entry."""
    return json.dumps({"request_id": request_id, "endpoint": endpoint, "payload": payload or body()})


def batch_file(*lines: str) -> bytes:
    """A batch file of these lines (newline-terminated)."""
    return ("\n".join(lines) + "\n").encode("utf-8")


def good_file(count: int) -> bytes:
    """A valid batch file of ``count`` requests named video_001, video_002, ..."""
    return batch_file(*(line(f"video_{n:03d}", body(n)) for n in range(1, count + 1)))
