"""Plan tiers and what each allows: concurrent generations, batches, and whether batches at all."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Plan(StrEnum):
    """The plans an organization can be on, lowest first (as sync.so names them)."""

    FREE = "free"
    HOBBYIST = "hobbyist"
    CREATOR = "creator"
    GROWTH = "growth"
    SCALE = "scale"
    ENTERPRISE = "enterprise"


BATCH_PLANS = frozenset({Plan.GROWTH, Plan.SCALE, Plan.ENTERPRISE})


@dataclass(frozen=True)
class PlanLimits:
    """What one plan allows at once; ``batches_allowed`` False means batch creation answers 402."""

    concurrent_generations: int
    concurrent_batches: int
    batches_allowed: bool


DEFAULT_LIMITS: Mapping[Plan, PlanLimits] = {
    Plan.FREE: PlanLimits(concurrent_generations=1, concurrent_batches=0, batches_allowed=False),
    Plan.HOBBYIST: PlanLimits(concurrent_generations=1, concurrent_batches=0, batches_allowed=False),
    Plan.CREATOR: PlanLimits(concurrent_generations=3, concurrent_batches=0, batches_allowed=False),
    Plan.GROWTH: PlanLimits(concurrent_generations=6, concurrent_batches=2, batches_allowed=True),
    Plan.SCALE: PlanLimits(concurrent_generations=15, concurrent_batches=5, batches_allowed=True),
    Plan.ENTERPRISE: PlanLimits(concurrent_generations=50, concurrent_batches=20, batches_allowed=True),
}


LIMIT_FIELDS = frozenset({"concurrent_generations", "concurrent_batches", "batches_allowed"})


def plan_table(overrides: Mapping[str, Mapping[str, int | bool]]) -> dict[Plan, PlanLimits]:
    """The default limits with some plans' fields replaced, e.g. ``{"growth": {"concurrent_batches": 4}}``.

    Raises ValueError naming an unknown plan, an unknown field or a negative cap.
    """
    table = dict(DEFAULT_LIMITS)
    for name, fields in overrides.items():
        try:
            plan = Plan(name)
        except ValueError:
            raise ValueError(f"unknown plan {name!r}; plans are {', '.join(Plan)}") from None
        unknown = set(fields) - LIMIT_FIELDS
        if unknown:
            raise ValueError(f"plan {name!r}: unknown limit(s) {', '.join(sorted(unknown))}")
        merged = {**table[plan].__dict__, **fields}
        if merged["concurrent_generations"] < 0 or merged["concurrent_batches"] < 0:
            raise ValueError(f"plan {name!r}: caps must not be negative")
        table[plan] = PlanLimits(
            concurrent_generations=int(merged["concurrent_generations"]),
            concurrent_batches=int(merged["concurrent_batches"]),
            batches_allowed=bool(merged["batches_allowed"]),
        )
    return table


def limits_for(
    plan: Plan,
    table: Mapping[Plan, PlanLimits] = DEFAULT_LIMITS,
    *,
    generations_override: int | None = None,
    batches_override: int | None = None,
) -> PlanLimits:
    """A plan's limits from ``table``, with an organization's own overrides (enterprise is configurable)."""
    base = table[plan]
    return PlanLimits(
        concurrent_generations=base.concurrent_generations
        if generations_override is None
        else generations_override,
        concurrent_batches=base.concurrent_batches if batches_override is None else batches_override,
        batches_allowed=base.batches_allowed,
    )


def may_start_generation(limits: PlanLimits, running: int) -> bool:
    """Whether one more non-batch generation may be PENDING or PROCESSING (batch lines never count)."""
    return running < limits.concurrent_generations


def may_start_batch(limits: PlanLimits, running: int) -> bool:
    """Whether one more batch may run now (the plan must allow batches at all)."""
    return limits.batches_allowed and running < limits.concurrent_batches
