"""parse_generation never raises: any JSON value gives a model or a non-empty list of problems."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lipsync_api.api.engine_request import to_engine_request
from lipsync_api.api.generation_request import FieldProblem, parse_generation
from tests.unit.api.factories import valid_payloads

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
# Values a mutation is likely to make interesting: right type, wrong place, edge of a range.
near_misses = st.sampled_from(
    [
        "",
        "video",
        "audio",
        "text",
        "a1",
        "b2",
        "cut_off",
        "https://h/x",
        "ftp://h/x",
        0,
        -1,
        0.5,
        1e308,
        [],
        {},
    ]
)


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) slot of a JSON tree, the tree's own containers included."""
    slots: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        for key, child in node.items():
            slots.append((node, key))
            slots.extend(_slots(child))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            slots.append((node, index))
            slots.extend(_slots(child))
    return slots


@st.composite
def mutated_payloads(draw: st.DrawFn) -> Any:
    """A valid payload with a few slots replaced, deleted or added."""
    payload = copy.deepcopy(draw(st.sampled_from(valid_payloads())))
    for _ in range(draw(st.integers(1, 4))):
        container, key = draw(st.sampled_from(_slots(payload)))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        value = draw(json_values | near_misses)
        if action == "replace":
            container[key] = value
        elif action == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[draw(st.text(max_size=12) | st.sampled_from(["refId", "url", "assetId", "type"]))] = (
                value
            )
        else:
            container.append(value)
        if not _slots(payload):
            break
    return payload


def _check(data: object) -> None:
    _check_once(data, allow_local_files=False)
    _check_once(data, allow_local_files=True)


def _check_once(data: object, *, allow_local_files: bool) -> None:
    model, problems = parse_generation(data, allow_local_files=allow_local_files)
    assert (model is None) == bool(problems)
    for problem in problems:
        assert isinstance(problem, FieldProblem)
        assert isinstance(problem.field, str) and isinstance(problem.message, str) and problem.message
        assert "pydantic" not in problem.message and "errors.pydantic.dev" not in problem.message
    if model is not None:
        to_engine_request(model, allow_local_files=allow_local_files)  # whatever was accepted converts


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value(data: object) -> None:
    _check(data)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_payloads())
def test_mutated_valid_payloads(data: object) -> None:
    _check(data)


def test_deep_nesting_does_not_raise() -> None:
    deep: Any = []
    for _ in range(50_000):
        deep = [deep]
    for payload in ({"model": "m", "input": deep}, {"model": "m", "input": [], "extra": deep}, deep):
        _check(payload)
