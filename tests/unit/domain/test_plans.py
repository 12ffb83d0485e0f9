"""Plan tiers and limits (domain/plans.py)."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from lipsync_api.api.runtime import service_limits
from lipsync_api.config import Settings
from lipsync_api.domain.plans import (
    BATCH_PLANS,
    DEFAULT_LIMITS,
    Plan,
    PlanLimits,
    limits_for,
    may_start_batch,
    may_start_generation,
    plan_table,
)


@pytest.mark.parametrize(
    ("plan", "cap"),
    [(Plan.FREE, 1), (Plan.HOBBYIST, 1), (Plan.CREATOR, 3), (Plan.GROWTH, 6), (Plan.SCALE, 15)],
)
def test_generation_caps_match_the_api(plan: Plan, cap: int) -> None:
    limits = limits_for(plan)
    assert limits.concurrent_generations == cap
    assert may_start_generation(limits, cap - 1)
    assert not may_start_generation(limits, cap)


def test_batches_need_growth_or_above() -> None:
    for plan in Plan:
        assert DEFAULT_LIMITS[plan].batches_allowed == (plan in BATCH_PLANS)
        assert may_start_batch(limits_for(plan), 0) == (plan in BATCH_PLANS)


def test_enterprise_is_configurable_per_organization() -> None:
    limits = limits_for(Plan.ENTERPRISE, generations_override=200, batches_override=40)
    assert limits == PlanLimits(concurrent_generations=200, concurrent_batches=40, batches_allowed=True)


def test_batch_cap_is_enforced() -> None:
    limits = limits_for(Plan.GROWTH)
    assert may_start_batch(limits, limits.concurrent_batches - 1)
    assert not may_start_batch(limits, limits.concurrent_batches)


def test_a_custom_table_replaces_the_defaults() -> None:
    table = {**DEFAULT_LIMITS, Plan.GROWTH: PlanLimits(9, 4, True)}
    assert limits_for(Plan.GROWTH, table).concurrent_generations == 9


def test_plan_table_overrides_only_the_fields_named() -> None:
    table = plan_table({"growth": {"concurrent_batches": 4}, "free": {"batches_allowed": True}})
    assert table[Plan.GROWTH] == PlanLimits(6, 4, True)
    assert table[Plan.FREE].batches_allowed and table[Plan.FREE].concurrent_generations == 1
    assert table[Plan.SCALE] == DEFAULT_LIMITS[Plan.SCALE]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"gold": {"concurrent_batches": 1}}, "unknown plan 'gold'"),
        ({"growth": {"batches": 1}}, "unknown limit(s) batches"),
        ({"growth": {"concurrent_generations": -1}}, "must not be negative"),
    ],
)
def test_plan_table_refuses_what_it_does_not_know(overrides: dict[str, dict[str, int]], named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        plan_table(overrides)


def test_plan_limits_setting_reaches_the_service_limits() -> None:
    settings = Settings(plan_limits={"creator": {"batches_allowed": True, "concurrent_batches": 1}})
    limits = service_limits(settings)
    assert limits.plans[Plan.CREATOR] == PlanLimits(3, 1, True)
    with pytest.raises(ValidationError, match="unknown plan"):
        Settings(plan_limits={"platinum": {}})
