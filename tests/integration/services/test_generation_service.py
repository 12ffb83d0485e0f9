"""create_generation and get_generation on a real store: validation, idempotency, plan caps, tenants."""

from __future__ import annotations

import asyncio

import pytest

from lipsync_api.domain.plans import Plan
from lipsync_api.domain.services import ServiceLimits, create_batch, create_generation, get_generation
from lipsync_api.errors import (
    ConcurrencyLimitReached,
    IdempotencyKeyReused,
    InvalidGenerationRequest,
    InvalidIdempotencyKey,
    NotFoundError,
    response_body,
)
from lipsync_api.store import Store
from lipsync_api.store.models import GenerationStatus
from tests.integration.services.factories import body, good_file, make_org
from tests.integration.store.factories import T0

pytestmark = pytest.mark.asyncio
LIMITS = ServiceLimits()


async def test_a_generation_is_stored_as_received(store: Store) -> None:
    org = await make_org(store)
    sent = body(webhookUrl="https://hooks.example.com/g", outputFileName="clip_01", extra={"kept": True})
    created = await create_generation(store, org, sent, None, LIMITS, now=T0)
    stored = await get_generation(store, org, created.id)
    assert stored.status == GenerationStatus.PENDING
    assert (stored.model, stored.request, stored.created_at) == ("lipsync-2", sent, T0)
    assert (stored.webhook_url, stored.output_file_name) == ("https://hooks.example.com/g", "clip_01")
    assert stored.batch_id is None and stored.idempotency_key is None


async def test_every_problem_of_an_invalid_body_is_a_400_and_nothing_is_stored(store: Store) -> None:
    org = await make_org(store)
    with pytest.raises(InvalidGenerationRequest) as caught:
        await create_generation(store, org, {"model": "lipsync-2", "input": []}, None, LIMITS)
    assert caught.value.messages == [
        "input: needs exactly one video input, got 0",
        "input: needs exactly one audio input, got 0 (several only together with segments)",
    ]
    assert response_body(caught.value) == {"statusCode": 400, "message": caught.value.messages}
    assert await store.generations.list_for_organization(org.id) == []


@pytest.mark.parametrize("sent", [None, [], "text", {"model": "x" * 101, "input": body()["input"]}])
async def test_non_objects_and_overlong_model_names_are_400(store: Store, sent: object) -> None:
    org = await make_org(store)
    with pytest.raises(InvalidGenerationRequest):
        await create_generation(store, org, sent, None, LIMITS)


async def test_the_same_key_and_body_return_the_first_generation(store: Store) -> None:
    org = await make_org(store)
    first = await create_generation(store, org, body(), "key-1", LIMITS)
    reordered = dict(reversed(list(body().items())))  # the same JSON, keys in another order
    again = await create_generation(store, org, reordered, "key-1", LIMITS)
    assert again.id == first.id
    assert len(await store.generations.list_for_organization(org.id)) == 1


async def test_the_same_key_with_another_body_is_409(store: Store) -> None:
    org = await make_org(store)
    await create_generation(store, org, body(1), "key-1", LIMITS)
    with pytest.raises(IdempotencyKeyReused) as caught:
        await create_generation(store, org, body(2), "key-1", LIMITS)
    assert response_body(caught.value)["errorCode"] == "IDEMPOTENCY_KEY_REUSED"
    assert caught.value.status_code == 409


async def test_keys_are_scoped_to_the_organization(store: Store) -> None:
    org, other = await make_org(store), await make_org(store)
    first = await create_generation(store, org, body(1), "shared", LIMITS)
    second = await create_generation(store, other, body(2), "shared", LIMITS)
    assert first.id != second.id


@pytest.mark.parametrize("key", ["", " ", "a b", "k" * 129, "ключ", "a/b", "key\n"])
async def test_a_malformed_key_is_400_and_nothing_is_stored(store: Store, key: str) -> None:
    org = await make_org(store)
    with pytest.raises(InvalidIdempotencyKey) as caught:
        await create_generation(store, org, body(), key, LIMITS)
    assert (caught.value.status_code, caught.value.error_code) == (400, "INVALID_IDEMPOTENCY_KEY")
    assert await store.generations.list_for_organization(org.id) == []


async def test_the_longest_key_of_every_allowed_character_is_accepted(store: Store) -> None:
    org = await make_org(store)
    key = ("Az09._~-" * 16)[:128]
    created = await create_generation(store, org, body(), key, LIMITS)
    assert created.idempotency_key == key and created.request_hash is not None


async def test_the_free_plan_runs_one_generation_at_a_time(store: Store) -> None:
    org = await make_org(store, Plan.FREE)
    await create_generation(store, org, body(1), None, LIMITS)
    with pytest.raises(ConcurrencyLimitReached) as caught:
        await create_generation(store, org, body(2), None, LIMITS)
    assert response_body(caught.value) == {
        "statusCode": 429,
        "message": "concurrency limit reached: the free plan allows 1 generation(s) at once",
        "errorCode": "concurrency_limit_reached",
    }


async def test_a_retry_at_the_cap_returns_the_first_generation(store: Store) -> None:
    org = await make_org(store, Plan.FREE)
    first = await create_generation(store, org, body(), "retry", LIMITS)
    assert (await create_generation(store, org, body(), "retry", LIMITS)).id == first.id


async def test_a_finished_generation_frees_its_slot(store: Store) -> None:
    org = await make_org(store, Plan.FREE)
    await create_generation(store, org, body(1), None, LIMITS)
    claim = await store.leases.claim_next("worker", 60)
    assert claim is not None
    await store.leases.finish(claim.generation.id, "worker", claim.attempt, GenerationStatus.COMPLETED)
    await create_generation(store, org, body(2), None, LIMITS)


async def test_batch_lines_do_not_count_against_the_generation_cap(store: Store) -> None:
    org = await make_org(store, Plan.GROWTH, generation_cap_override=1)
    await create_batch(store, org, good_file(3), None, LIMITS, T0)
    await create_generation(store, org, body(1), None, LIMITS)
    with pytest.raises(ConcurrencyLimitReached):
        await create_generation(store, org, body(2), None, LIMITS)


async def test_concurrent_requests_with_one_key_make_one_generation(store: Store) -> None:
    org = await make_org(store)
    created = await asyncio.gather(*(create_generation(store, org, body(), "race", LIMITS) for _ in range(5)))
    assert len({generation.id for generation in created}) == 1
    assert len(await store.generations.list_for_organization(org.id)) == 1


async def test_concurrent_requests_at_the_cap_let_exactly_one_through(store: Store) -> None:
    org = await make_org(store, Plan.FREE)
    outcomes = await asyncio.gather(
        *(create_generation(store, org, body(n), None, LIMITS) for n in range(5)), return_exceptions=True
    )
    assert sum(isinstance(outcome, ConcurrencyLimitReached) for outcome in outcomes) == 4
    assert len(await store.generations.list_for_organization(org.id)) == 1


async def test_another_organizations_generation_is_not_found(store: Store) -> None:
    org, other = await make_org(store), await make_org(store)
    created = await create_generation(store, org, body(), None, LIMITS)
    with pytest.raises(NotFoundError) as caught:
        await get_generation(store, other, created.id)
    assert caught.value.status_code == 404
    with pytest.raises(NotFoundError):
        await get_generation(store, org, "00000000-0000-0000-0000-000000000000")
