"""The retry schedule and the policy's checks (pure)."""

from __future__ import annotations

import random

import pytest

from lipsync_api.delivery import DeliveryPolicy, backoff_seconds

POLICY = DeliveryPolicy(base_delay=10, max_delay=300, jitter=0.2)


def test_doubles_up_to_the_cap_without_jitter() -> None:
    policy = DeliveryPolicy(base_delay=10, max_delay=300, jitter=0)
    delays = [backoff_seconds(n, policy, random.Random()) for n in range(1, 8)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]


def test_jitter_only_shortens_and_is_deterministic_with_a_seed() -> None:
    first = [backoff_seconds(n, POLICY, random.Random(3)) for n in range(1, 12)]
    assert first == [backoff_seconds(n, POLICY, random.Random(3)) for n in range(1, 12)]
    for n, delay in enumerate(first, start=1):
        full = min(300, 10 * 2 ** (n - 1))
        assert 0.8 * full <= delay <= full


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    assert backoff_seconds(10_000, DeliveryPolicy(jitter=0), random.Random()) == DeliveryPolicy().max_delay


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"read_timeout": 0},
        {"jitter": 1.0},
        {"base_delay": 10, "max_delay": 5},
        {"connect_timeout": 30, "read_timeout": 30, "lease_seconds": 120},
    ],
)
def test_impossible_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DeliveryPolicy(**kwargs)
