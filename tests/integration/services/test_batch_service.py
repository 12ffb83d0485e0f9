"""Batch use cases on a real store: plans, caps, validation, one row per line, dry runs, cancel, tenants."""

from __future__ import annotations

from datetime import timedelta

import pytest

from lipsync_api.domain.plans import Plan
from lipsync_api.domain.services import (
    ServiceLimits,
    cancel_batch,
    create_batch,
    dry_run_batch,
    get_batch,
)
from lipsync_api.errors import (
    BatchFileInvalid,
    BatchFileTooLarge,
    ConcurrencyLimitReached,
    InvalidRequestError,
    NotFoundError,
    PlanUpgradeRequired,
    response_body,
)
from lipsync_api.store import Store
from lipsync_api.store.models import BatchStatus, GenerationStatus
from tests.integration.services.factories import batch_file, body, good_file, line, make_org
from tests.integration.store.factories import T0, at

pytestmark = pytest.mark.asyncio
LIMITS = ServiceLimits()
BELOW_GROWTH = [Plan.FREE, Plan.HOBBYIST, Plan.CREATOR]


async def test_a_batch_stores_one_generation_per_line_in_input_order(store: Store) -> None:
    org = await make_org(store)
    data = batch_file(line("b", body(2)), "", line("a", body(1)), line("c", body(3, outputFileName="c3")))
    record = await create_batch(store, org, data, "https://hooks.example.com/b", LIMITS, T0)
    batch = record.batch
    assert (batch.status, batch.created_at, batch.expires_at) == (BatchStatus.JOBS_CREATED, T0, at(86400))
    assert batch.webhook_url == "https://hooks.example.com/b"
    assert (record.metrics.total_generations, record.metrics.pending_count) == (3, 3)
    rows = await store.generations.list_for_batch(batch.id)
    assert [(g.request_id, g.line_no) for g in rows] == [("b", 1), ("a", 3), ("c", 4)]
    assert [g.request for g in rows] == [body(2), body(1), body(3, outputFileName="c3")]
    assert {(g.status, g.organization_id, g.model) for g in rows} == {
        (GenerationStatus.PENDING, org.id, "lipsync-2")
    }
    assert rows[2].output_file_name == "c3"


async def test_the_expiry_window_is_a_limit(store: Store) -> None:
    org = await make_org(store)
    limits = ServiceLimits(batch_expiry=timedelta(hours=1))
    record = await create_batch(store, org, good_file(1), None, limits, T0)
    assert record.batch.expires_at == at(3600) and record.batch.webhook_url is None


@pytest.mark.parametrize("plan", BELOW_GROWTH)
async def test_plans_below_growth_get_402_even_for_a_dry_run(store: Store, plan: Plan) -> None:
    org = await make_org(store, plan)
    with pytest.raises(PlanUpgradeRequired) as caught:
        await create_batch(store, org, good_file(1), None, LIMITS, T0)
    assert response_body(caught.value)["errorCode"] == "plan_upgrade_required"
    assert caught.value.status_code == 402
    with pytest.raises(PlanUpgradeRequired):
        await dry_run_batch(store, org, good_file(1), LIMITS)


async def test_a_batch_over_the_running_cap_is_429_until_one_ends(store: Store) -> None:
    org = await make_org(store)  # growth: two batches at once
    first = await create_batch(store, org, good_file(1), None, LIMITS, T0)
    await create_batch(store, org, good_file(1), None, LIMITS, T0)
    with pytest.raises(ConcurrencyLimitReached) as caught:
        await create_batch(store, org, good_file(1), None, LIMITS, T0)
    assert caught.value.status_code == 429
    assert len((await store.batches.list_for_organization(org.id)).items) == 2
    await cancel_batch(store, org, first.batch.id, at(1))
    await create_batch(store, org, good_file(1), None, LIMITS, T0)


async def test_the_batch_cap_override_applies(store: Store) -> None:
    org = await make_org(store, Plan.ENTERPRISE, batch_cap_override=1)
    await create_batch(store, org, good_file(1), None, LIMITS, T0)
    with pytest.raises(ConcurrencyLimitReached):
        await create_batch(store, org, good_file(1), None, LIMITS, T0)


async def test_an_invalid_file_is_400_naming_every_problem_and_nothing_is_stored(store: Store) -> None:
    org = await make_org(store)
    data = batch_file(
        line("a"),
        "not json",
        line("a", body(2)),
        line("b", {"model": "lipsync-2", "input": []}),
        line("c", endpoint="/v2/other"),
    )
    with pytest.raises(BatchFileInvalid) as caught:
        await create_batch(store, org, data, None, LIMITS, T0)
    answer = response_body(caught.value)
    assert (answer["statusCode"], answer["errorCode"]) == (400, "invalid_batch_file")
    assert answer["message"] == [
        "line 2: not valid JSON: Expecting value at column 1",
        "line 3: request_id: 'a' duplicates line 1",
        "line 4: payload.input: needs exactly one video input, got 0",
        "line 4: payload.input: needs exactly one audio input, got 0 (several only together with segments)",
        "line 5: endpoint: '/v2/other' is not supported; it must be '/v2/generate'",
    ]
    errors = answer["errors"]
    assert isinstance(errors, list) and errors[1] == {
        "line": 3,
        "request_id": "a",
        "field": "request_id",
        "message": "'a' duplicates line 1",
    }
    assert (await store.batches.list_for_organization(org.id)).items == []


async def test_a_payload_is_held_to_the_generate_rules(store: Store) -> None:
    org = await make_org(store)
    data = batch_file(line("a", body(model="m" * 101)), line("b", body(outputFileName="bad name")))
    with pytest.raises(BatchFileInvalid) as caught:
        await create_batch(store, org, data, None, LIMITS, T0)
    fields = [error["field"] for error in caught.value.body["errors"]]
    assert fields == ["payload.model", "payload.outputFileName"]


async def test_more_requests_than_the_limit_is_400(store: Store) -> None:
    org = await make_org(store)
    with pytest.raises(BatchFileInvalid) as caught:
        await create_batch(store, org, good_file(3), None, ServiceLimits(max_batch_requests=2), T0)
    assert caught.value.body["message"] == ["line 3: more than 2 requests (the limit)"]


async def test_an_oversize_file_is_413_in_the_same_shape(store: Store) -> None:
    org = await make_org(store)
    data = good_file(2)
    limits = ServiceLimits(max_batch_bytes=len(data) - 1)
    with pytest.raises(BatchFileTooLarge) as caught:
        await create_batch(store, org, data, None, limits, T0)
    assert response_body(caught.value) == {
        "statusCode": 413,
        "message": [f"the file is larger than {len(data) - 1} bytes"],
        "errorCode": "batch_file_too_large",
        "errors": [
            {
                "line": None,
                "request_id": None,
                "field": None,
                "message": f"the file is larger than {len(data) - 1} bytes",
            }
        ],
    }
    with pytest.raises(BatchFileTooLarge):
        await dry_run_batch(store, org, data, limits)
    await create_batch(store, org, data, None, ServiceLimits(max_batch_bytes=len(data)), T0)


@pytest.mark.parametrize("url", ["ftp://hooks.example.com", "not a url", "https://"])
async def test_a_webhook_url_that_is_not_http_is_400(store: Store, url: str) -> None:
    org = await make_org(store)
    with pytest.raises(InvalidRequestError):
        await create_batch(store, org, good_file(1), url, LIMITS, T0)


async def test_a_dry_run_validates_and_stores_nothing(store: Store) -> None:
    org = await make_org(store)
    answer = await dry_run_batch(store, org, good_file(3), LIMITS)
    assert answer == {
        "status": "VALIDATED",
        "total_generations": 3,
        "estimatedFrameCount": None,
        "estimatedGenerationCost": None,
        "warnings": ["cost and frame estimates need the media; they are computed when the batch runs"],
    }
    with pytest.raises(BatchFileInvalid):
        await dry_run_batch(store, org, batch_file("{}"), LIMITS)
    assert (await store.batches.list_for_organization(org.id)).items == []
    assert await store.generations.list_for_organization(org.id) == []


async def test_cancel_closes_pending_lines_and_leaves_running_ones(store: Store) -> None:
    org = await make_org(store)
    created = await create_batch(store, org, good_file(3), None, LIMITS, T0)
    claim = await store.leases.claim_next("worker", 60, now=at(1))
    assert claim is not None and claim.generation.line_no == 1
    record = await cancel_batch(store, org, created.batch.id, at(2))
    assert (record.batch.status, record.batch.canceled_at) == (BatchStatus.CANCELED, at(2))
    assert (record.metrics.canceled_count, record.metrics.processing_count) == (2, 1)
    rows = await store.generations.list_for_batch(created.batch.id)
    assert [g.status for g in rows] == ["PROCESSING", "CANCELED", "CANCELED"]
    assert {(g.error_code, g.completed_at) for g in rows[1:]} == {("generation_canceled", at(2))}


async def test_cancel_is_idempotent(store: Store) -> None:
    org = await make_org(store)
    created = await create_batch(store, org, good_file(2), None, LIMITS, T0)
    first = await cancel_batch(store, org, created.batch.id, at(1))
    again = await cancel_batch(store, org, created.batch.id, at(5))
    assert again.batch.canceled_at == at(1)
    assert (again.batch.version, again.metrics) == (first.batch.version, first.metrics)


async def test_cancel_leaves_a_finished_batch_unchanged(store: Store) -> None:
    org = await make_org(store)
    created = await create_batch(store, org, good_file(1), None, LIMITS, T0)
    done = BatchStatus.COMPLETED
    assert await store.batches.transition(created.batch.id, done, from_statuses=[BatchStatus.JOBS_CREATED])
    record = await cancel_batch(store, org, created.batch.id, at(1))
    assert (record.batch.status, record.batch.canceled_at, record.metrics.pending_count) == (done, None, 1)


async def test_another_organizations_batch_is_not_found(store: Store) -> None:
    org, other = await make_org(store), await make_org(store)
    created = await create_batch(store, org, good_file(2), None, LIMITS, T0)
    with pytest.raises(NotFoundError):
        await get_batch(store, other, created.batch.id)
    with pytest.raises(NotFoundError) as caught:
        await cancel_batch(store, other, created.batch.id, at(1))
    assert response_body(caught.value) == {
        "statusCode": 404,
        "message": f"batch {created.batch.id} not found",
    }
    untouched = await get_batch(store, org, created.batch.id)
    assert (untouched.batch.status, untouched.metrics.pending_count) == (BatchStatus.JOBS_CREATED, 2)
