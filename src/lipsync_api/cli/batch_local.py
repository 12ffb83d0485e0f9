"""Batch files checked on this machine: the server's own validator, and local media paths for ``batch run``.

Local paths are allowed only for ``batch run`` (and ``batch validate --local``); a relative one is taken
from the batch file's folder, and each must name an existing file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from lipsync_api.domain.batch_service import validate_batch_file
from lipsync_api.domain.generation_service import ServiceLimits
from lipsync_api.errors import BatchFileInvalid, BatchFileTooLarge

BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Checked:
    """A batch file's verdict: how many requests it holds, or every problem (``line N: ...``)."""

    requests: int
    problems: list[str]


def check_batch_file(data: bytes, limits: ServiceLimits, *, local: bool) -> Checked:
    """Validate as the server does (``local``: as ``batch run`` does, local files included and checked)."""
    try:
        parsed = validate_batch_file(data, limits, allow_local_files=local)
    except (BatchFileInvalid, BatchFileTooLarge) as error:
        messages = error.body.get("message")
        return Checked(0, [str(m) for m in messages] if isinstance(messages, list) else [error.message])
    return Checked(len(parsed.lines), missing_local_files(data) if local else [])


def resolve_local_paths(data: bytes, base: Path) -> bytes:
    """The file with each relative (or ``~``) local media path made absolute from ``base``; lines kept."""
    lines = data.split(b"\n")
    return b"\n".join(_resolve_line(raw, base, first=index == 0) for index, raw in enumerate(lines))


def missing_local_files(data: bytes) -> list[str]:
    """``line N: payload.input[i].url: no such file: PATH`` for each local media path that is not a file."""
    problems: list[str] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        entry = _entry(raw, first=number == 1)
        for index, item in _media_inputs(entry):
            path = _local_path(item.get("url"))
            if path is not None and not path.is_file():
                problems.append(f"line {number}: payload.input[{index}].url: no such file: {path}")
    return problems


def _resolve_line(raw: bytes, base: Path, *, first: bool) -> bytes:
    entry = _entry(raw, first=first)
    changed = False
    for _, item in _media_inputs(entry):
        url = item.get("url")
        if isinstance(url, str) and _local_path(url) is not None and not url.startswith("file:"):
            absolute = str(base / Path(url).expanduser())
            changed = changed or absolute != url
            item["url"] = absolute
    if not changed:
        return raw
    try:
        text = json.dumps(entry, ensure_ascii=False).encode()
    except ValueError:  # a lone surrogate somewhere: the validator names it on the untouched line
        return raw
    return text + (b"\r" if raw.endswith(b"\r") else b"")


def _entry(raw: bytes, *, first: bool) -> Any:
    if first:
        raw = raw.removeprefix(BOM)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _media_inputs(entry: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    payload = entry.get("payload") if isinstance(entry, dict) else None
    inputs = payload.get("input") if isinstance(payload, dict) else None
    if not isinstance(inputs, list):
        return
    for index, item in enumerate(inputs):
        if isinstance(item, dict) and item.get("type") in ("video", "audio"):
            yield index, item


def _local_path(url: object) -> Path | None:
    """The file a local media path or ``file://`` URL names; None for anything else."""
    if not isinstance(url, str) or not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme == "":
        return Path(url).expanduser()
    if parts.scheme == "file" and parts.netloc in ("", "localhost"):
        return Path(url2pathname(parts.path))
    return None
