"""A generate request's JSON -> a validated ``CreateGeneration``, or every problem found in it.

One validator serves ``POST /v2/generate`` and every batch line's ``payload``. It never raises on any
JSON value: it returns the model, or every problem it found, each with a field path like
``input[1].url`` or ``segments[0].audioInput.refId``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from lipsync_api.api.schemas import (
    ALLOW_LOCAL_FILES,
    INPUT_TYPES,
    AudioInput,
    CreateGeneration,
    Segment,
    TextInput,
    VideoInput,
)
from lipsync_api.text import is_unicode, shorten

_TYPES = ", ".join(f"'{t}'" for t in INPUT_TYPES)
_MESSAGES = {
    "missing": "required",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "union_tag_not_found": f"required: one of {_TYPES}",
    "string_too_short": "must not be empty",
    "string_unicode": "must be valid Unicode text (a lone surrogate)",
}


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with a request: where (a path like ``input[1].url``; "" for the body) and what."""

    field: str
    message: str
    code: str | None = None  # an API error code this problem implies, e.g. generation_unsupported_model

    def describe(self) -> str:
        """``input[1].url: must be an http(s) URL`` (the form a 400 ``message`` list uses)."""
        return f"{self.field}: {self.message}" if self.field else self.message


def parse_generation(
    data: object, *, allow_local_files: bool = False
) -> tuple[CreateGeneration | None, list[FieldProblem]]:
    """The validated request, or (None, every problem found); never raises on a JSON value.

    ``allow_local_files`` lets media inputs name local paths (the CLI only; never the HTTP API).
    """
    unusable = json_problems(data)
    if any(problem.message == TOO_DEEP for problem in unusable):
        return None, unusable
    model: CreateGeneration | None = None
    try:
        model = CreateGeneration.model_validate(data, context={ALLOW_LOCAL_FILES: allow_local_files})
    except ValidationError as error:
        problems = [_from_pydantic(detail) for detail in error.errors(include_url=False)]
    except RecursionError:
        return None, [FieldProblem("", "nested too deeply")]
    else:
        problems = list(generation_problems(model))
    named = {problem.field for problem in problems}
    problems += [problem for problem in unusable if problem.field not in named]
    return (None, problems) if problems else (model, [])


# Far deeper than the schema itself (5 levels); deeper JSON would only exhaust the stack of whatever
# copies, stores or answers the body later.
MAX_DEPTH = 64
TOO_DEEP = f"nested more than {MAX_DEPTH} levels deep"


def json_problems(data: object) -> list[FieldProblem]:
    """What no value may hold anywhere, ignored keys included, because the body is stored and sent back.

    A non-finite number (JSON's ``1e400`` parses to infinity) or a lone surrogate (``"\\ud800"``) is not
    valid in the JSON the API answers, nor storable; nesting past ``MAX_DEPTH`` is refused once.
    """
    problems: list[FieldProblem] = []
    too_deep = False
    stack: list[tuple[object, tuple[int | str, ...]]] = [(data, ())]
    while stack:
        value, loc = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(FieldProblem(_json_path(loc), "must be a finite number"))
        elif isinstance(value, str) and not is_unicode(value):
            problems.append(FieldProblem(_json_path(loc), "must be valid Unicode text (a lone surrogate)"))
        elif isinstance(value, dict | list) and len(loc) >= MAX_DEPTH:
            if not too_deep:
                problems.append(FieldProblem(_json_path(loc), TOO_DEEP))
            too_deep = True
        elif isinstance(value, dict):
            for key, child in reversed(value.items()):
                if isinstance(key, str) and not is_unicode(key):
                    problems.append(FieldProblem(_json_path(loc), "has a key that is not valid Unicode text"))
                else:
                    stack.append((child, (*loc, key)))
        elif isinstance(value, list):
            stack.extend((child, (*loc, index)) for index, child in reversed(list(enumerate(value))))
    return problems


def _json_path(loc: Sequence[int | str]) -> str:
    """A path like ``input[1].x-extra`` (keys shortened: they may be anything the client sent)."""
    parts = [f"[{key}]" if isinstance(key, int) else f".{shorten(str(key), 40)}" for key in loc]
    return "".join(parts).removeprefix(".")


def _from_pydantic(detail: ErrorDetails) -> FieldProblem:
    """A pydantic error as a FieldProblem: the path from ``loc``, a message without pydantic's jargon."""
    field, kind = field_path(detail["loc"]), detail["type"]
    if kind in ("union_tag_not_found", "union_tag_invalid"):
        field = f"{field}.type"
    if kind == "union_tag_invalid":
        tag = str(detail.get("ctx", {}).get("tag", ""))
        return FieldProblem(field, f"must be one of {_TYPES}, got {shorten(tag, 40)!r}")
    if field == "" and kind == "model_type":
        return FieldProblem(field, "the request body must be a JSON object")
    return FieldProblem(field, _message(detail))


def _message(detail: ErrorDetails) -> str:
    """Pydantic's message in this module's voice ("must be ..."), for the common error types."""
    kind, ctx = detail["type"], detail.get("ctx", {})
    if kind == "float_type" and type(detail.get("input")) is int:  # JSON's big integers overflow a float
        return "is too large a number"
    if kind in ("too_short", "too_long"):
        bound = "at least" if kind == "too_short" else "at most"
        limit = ctx.get("min_length" if kind == "too_short" else "max_length")
        return f"must have {bound} {limit} items, got {ctx.get('actual_length')}"
    return _MESSAGES.get(kind) or detail["msg"].replace("Input should be", "must be", 1)


def field_path(loc: Sequence[int | str]) -> str:
    """``('input', 1, 'audio', 'url')`` -> ``input[1].url`` (the union's tag pydantic inserts is dropped)."""
    parts: list[str] = []
    for depth, key in enumerate(loc):
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif not (depth == 2 and loc[0] == "input" and key in INPUT_TYPES):
            parts.append(f".{key}" if parts else key)
    return "".join(parts)


# --- rules between fields (run on a model that parsed) -----------------------------------------------


def generation_problems(model: CreateGeneration) -> Iterator[FieldProblem]:
    """Every rule API.md states that relates several fields, or that the schema only admits for now.

    An ``assetId`` is only checked for form here; whether the caller owns such an asset is the use case's
    question (it needs the store).
    """
    yield from _input_problems(model.input)
    yield from _audio_problems(model)
    for index, segment in enumerate(model.segments or ()):
        yield from _segment_problems(index, segment)
    yield from _overlap_problems(model.segments or ())


def _input_problems(inputs: Sequence[VideoInput | AudioInput | TextInput]) -> Iterator[FieldProblem]:
    videos = sum(isinstance(item, VideoInput) for item in inputs)
    if videos != 1:
        yield FieldProblem("input", f"needs exactly one video input, got {videos}")
    for index, item in enumerate(inputs):
        where = f"input[{index}]"
        if isinstance(item, TextInput):
            yield FieldProblem(where, "text-to-speech inputs are not supported yet; give an audio url")
            continue
        if item.asset_id is not None and item.url is not None:
            yield FieldProblem(f"{where}.assetId", "give either url or assetId, not both")
        elif item.asset_id is not None and not item.asset_id.strip():
            yield FieldProblem(f"{where}.assetId", "must not be empty")
        elif item.asset_id is None and item.url is None:
            yield FieldProblem(f"{where}.url", f"required: the {item.type}'s http(s) URL")
        if isinstance(item, VideoInput):
            yield from _deprecated_segments(where, item)


def _deprecated_segments(where: str, video: VideoInput) -> Iterator[FieldProblem]:
    for name in ("segments_secs", "segments_frames"):
        if getattr(video, name) is not None:
            yield FieldProblem(f"{where}.{name}", "deprecated and not supported; use the top-level segments")


def _audio_problems(model: CreateGeneration) -> Iterator[FieldProblem]:
    speech = [(i, item) for i, item in enumerate(model.input) if isinstance(item, AudioInput | TextInput)]
    if model.segments:
        yield from _ref_id_problems(speech, model.segments)
    elif len(speech) != 1:
        yield FieldProblem(
            "input", f"needs exactly one audio input, got {len(speech)} (several only together with segments)"
        )


def _ref_id_problems(
    speech: Sequence[tuple[int, AudioInput | TextInput]], segments: Sequence[Segment]
) -> Iterator[FieldProblem]:
    """With segments: each audio input has its own refId, and each segment names one of them."""
    first_use: dict[str, int] = {}
    for index, item in speech:
        if item.ref_id is None:
            yield FieldProblem(f"input[{index}].refId", "required when segments are given")
        elif item.ref_id in first_use:
            yield FieldProblem(
                f"input[{index}].refId", f"{item.ref_id!r} duplicates input[{first_use[item.ref_id]}].refId"
            )
        else:
            first_use[item.ref_id] = index
    for index, segment in enumerate(segments):
        ref = segment.audio_input.ref_id
        if ref not in first_use:
            yield FieldProblem(f"segments[{index}].audioInput.refId", f"{ref!r} names no audio input's refId")


def _segment_problems(index: int, segment: Segment) -> Iterator[FieldProblem]:
    where = f"segments[{index}]"
    if segment.end_time <= segment.start_time:
        yield FieldProblem(f"{where}.endTime", f"must be greater than startTime ({segment.start_time:g})")
    audio = segment.audio_input
    if (audio.start_time is None) != (audio.end_time is None):
        missing, given = ("endTime", "startTime") if audio.end_time is None else ("startTime", "endTime")
        yield FieldProblem(f"{where}.audioInput.{missing}", f"required together with {given}")
    elif audio.start_time is not None and audio.end_time is not None and audio.end_time <= audio.start_time:
        yield FieldProblem(
            f"{where}.audioInput.endTime", f"must be greater than startTime ({audio.start_time:g})"
        )


def _overlap_problems(segments: Sequence[Segment]) -> Iterator[FieldProblem]:
    """Segments may touch but not share time (the engine would refuse them only after acceptance)."""
    # Inverted segments already have their own problem; comparing them would only add noise.
    ranges = sorted(
        (s.start_time, s.end_time, i) for i, s in enumerate(segments) if s.start_time < s.end_time
    )
    latest: tuple[float, int] | None = None  # (endTime, index) of the range reaching furthest so far
    for start, end, index in ranges:
        if latest is not None and start < latest[0]:
            yield FieldProblem(
                f"segments[{index}].startTime", f"overlaps segments[{latest[1]}] (endTime {latest[0]:g})"
            )
        if latest is None or end > latest[0]:
            latest = (end, index)
