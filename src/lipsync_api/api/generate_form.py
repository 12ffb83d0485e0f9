"""A multipart ``POST /v2/generate`` form -> the generate body it stands for, and its uploaded files.

Fields (API.md, plus ``segments`` and ``outputFileName``): ``model``, ``webhookUrl``, ``outputFileName`` as
text; ``input`` (a JSON array of inputs), ``options`` (a JSON object) and ``segments`` (a JSON array) as
JSON text; ``video`` and ``audio`` as files. An empty text field counts as absent. The official SDK's
``create_with_files`` sends ``model``, ``webhookUrl`` and the files only (httpx cannot encode its
``input``/``options`` objects as form fields); other clients may send the JSON fields as text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lipsync_api.api.upload import FilePart, MultipartForm, upload_too_large
from lipsync_api.domain.upload_service import MediaUpload
from lipsync_api.errors import InvalidGenerationRequest
from lipsync_api.store.models import AssetKind

FILE_FIELDS = {"video": AssetKind.VIDEO, "audio": AssetKind.AUDIO}
FILE_FIELDS_BY_KIND = {kind: name for name, kind in FILE_FIELDS.items()}
TEXT_FIELDS = ("model", "webhookUrl", "outputFileName")
JSON_FIELDS: dict[str, type] = {"input": list, "options": dict, "segments": list}
_SHAPES: dict[type, str] = {list: "a JSON array", dict: "a JSON object"}
_SPEECH_TYPES = ("audio", "text")


@dataclass(frozen=True)
class GenerateForm:
    """The body the form stands for (without the uploaded files' inputs) and the uploaded files."""

    body: dict[str, Any]
    uploads: tuple[MediaUpload, ...]


def media_parts(limit: int, spool_dir: Path) -> dict[str, FilePart]:
    """How the form's files are read: spooled to ``spool_dir``, each refused with 413 past ``limit``."""
    return {name: FilePart(limit, upload_too_large, spool_dir) for name in FILE_FIELDS}


def generate_form(form: MultipartForm) -> GenerateForm:
    """The form's request, or a 400 naming every problem of the form at once."""
    problems: list[str] = [f"{name}: given more than once" for name in _repeated(form)]
    body: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        if text := form.text(name):
            body[name] = text
    for name, shape in JSON_FIELDS.items():
        value, problem = _json_field(form, name, shape)
        if problem:
            problems.append(problem)
        elif value is not None:
            body[name] = value
    if "model" not in body:
        problems.append("model: required")
    uploads = tuple(_uploads(form))
    problems.extend(
        f"{FILE_FIELDS_BY_KIND[u.kind]}: the uploaded file is empty" for u in uploads if not u.size
    )
    problems.extend(_media_problems(body, {u.kind for u in uploads}))
    if problems:
        raise InvalidGenerationRequest(problems)
    return GenerateForm(body, uploads)


def _repeated(form: MultipartForm) -> list[str]:
    known = (*TEXT_FIELDS, *JSON_FIELDS, *FILE_FIELDS)
    return [name for name in known if form.counts.get(name, 0) > 1]


def _json_field(form: MultipartForm, name: str, shape: type) -> tuple[Any, str | None]:
    """The field's JSON value (None when absent, empty or null), or the problem with it."""
    text = form.text(name)
    if text is None or not text.strip():
        return None, None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        reason = (
            f"{error.msg} at column {error.colno}" if isinstance(error, json.JSONDecodeError) else "invalid"
        )
        return None, f"{name}: not valid JSON ({reason})"
    if value is not None and not isinstance(value, shape):
        return None, f"{name}: must be {_SHAPES[shape]}"
    return value, None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _uploads(form: MultipartForm) -> Iterator[MediaUpload]:
    for name, kind in FILE_FIELDS.items():
        spooled = form.files.get(name)
        if spooled is not None:
            yield MediaUpload(kind, spooled.path, spooled.size, spooled.sha256, spooled.filename)


def _media_problems(body: Mapping[str, Any], uploaded: set[AssetKind]) -> Iterator[str]:
    """A video and an audio, each given once: as a file or in ``input``, not both."""
    items = [(i, item) for i, item in enumerate(body.get("input") or ()) if isinstance(item, dict)]
    videos = [i for i, item in items if item.get("type") == "video"]
    speech = [i for i, item in items if item.get("type") in _SPEECH_TYPES]
    if AssetKind.VIDEO in uploaded and videos:
        yield f"video: a video file was uploaded and input[{videos[0]}] is a video too; give one or the other"
    elif AssetKind.VIDEO not in uploaded and not videos:
        yield "video: required: upload a video file (or give a video input in input)"
    if AssetKind.AUDIO in uploaded and body.get("segments"):
        yield "audio: an uploaded audio file cannot be used with segments (they name audio inputs by refId)"
    elif AssetKind.AUDIO in uploaded and speech:
        yield f"audio: an audio file was uploaded and input[{speech[0]}] is audio too; give one or the other"
    elif AssetKind.AUDIO not in uploaded and not speech:
        yield "audio: required: upload an audio file (or give an audio input in input)"
