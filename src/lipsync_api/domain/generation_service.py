"""Use cases of single generations (create, get), and what every use case shares: limits, plans, payloads.

Each use case takes the store and the limits explicitly; nothing here is global. Errors are raised from
``lipsync_api.errors`` and mapped to HTTP in one place by the API layer.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from lipsync_api.api.generation_request import FieldProblem, parse_generation
from lipsync_api.api.schemas import CreateGeneration
from lipsync_api.domain.assets import asset_problems
from lipsync_api.domain.models_catalog import ModelCatalog, default_model_engines
from lipsync_api.domain.plans import DEFAULT_LIMITS, Plan, PlanLimits, limits_for
from lipsync_api.errors import (
    ConcurrencyLimitReached,
    ErrorCode,
    IdempotencyKeyReused,
    InvalidGenerationRequest,
    InvalidIdempotencyKey,
    NotFoundError,
)
from lipsync_api.store import Store
from lipsync_api.store.generations import InsertOutcome
from lipsync_api.store.models import Generation, Organization

IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._~-]{1,128}")
# The width of the ``generations.model`` column: a longer name would be a database error, not a 400.
MAX_MODEL_NAME = 100


@dataclass(frozen=True)
class ServiceLimits:
    """The limits the use cases enforce (built from Settings by the caller; defaults as API.md says)."""

    max_batch_requests: int = 1000
    max_batch_bytes: int = 5 * 1024 * 1024
    batch_expiry: timedelta = timedelta(hours=24)
    plans: Mapping[Plan, PlanLimits] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    catalog: ModelCatalog = field(default_factory=lambda: ModelCatalog(default_model_engines()))

    def __post_init__(self) -> None:
        if self.max_batch_requests < 1 or self.max_batch_bytes < 1 or self.batch_expiry <= timedelta(0):
            raise ValueError("batch limits and the expiry window must be positive")


@dataclass(frozen=True)
class ValidPayload:
    """A generate body that passed validation: as received (what is stored) and as parsed."""

    body: dict[str, Any]
    model: CreateGeneration


def plan_limits(org: Organization, limits: ServiceLimits) -> PlanLimits:
    """The organization's limits: its plan's row of the table, with the organization's own overrides."""
    return limits_for(
        Plan(org.plan),
        limits.plans,
        generations_override=org.generation_cap_override,
        batches_override=org.batch_cap_override,
    )


def validate_payload(
    body: object, catalog: ModelCatalog | None = None, *, allow_local_files: bool = False
) -> tuple[ValidPayload | None, list[FieldProblem]]:
    """The body of ``POST /v2/generate`` (or a batch line's payload) validated, or every problem in it.

    With a ``catalog``, a model name it does not serve is a problem (code ``generation_unsupported_model``).
    ``allow_local_files`` admits local paths as media (``batch run`` on this machine; never the HTTP API).
    """
    model, problems = parse_generation(body, allow_local_files=allow_local_files)
    if model is not None and len(model.model) > MAX_MODEL_NAME:
        problems = [FieldProblem("model", f"must be at most {MAX_MODEL_NAME} characters")]
    elif model is not None and catalog is not None and not catalog.serves(model.model):
        problems = [
            FieldProblem("model", catalog.unsupported(model.model), ErrorCode.UNSUPPORTED_MODEL.value)
        ]
    if model is None or problems or not isinstance(body, dict):
        return None, problems
    return ValidPayload(copy.deepcopy(body), model), []


def request_hash(body: object) -> str:
    """SHA-256 of the body's canonical JSON (sorted keys, compact), to tell a retry from a reused key."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def check_idempotency_key(key: str | None) -> None:
    """Refuse an empty or malformed ``Idempotency-Key`` (None: the header was not sent)."""
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidIdempotencyKey("Idempotency-Key must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ -")


def generation_row(payload: ValidPayload, org_id: str, now: datetime | None) -> Generation:
    """A new PENDING generation for a validated payload (the caller adds key, hash or batch fields)."""
    return Generation(
        organization_id=org_id,
        model=payload.model.model,
        request=payload.body,
        webhook_url=payload.model.webhook_url,
        output_file_name=payload.model.output_file_name,
        created_at=now,
    )


async def create_generation(
    store: Store,
    org: Organization,
    body: object,
    idempotency_key: str | None,
    limits: ServiceLimits,
    *,
    now: datetime | None = None,
    fingerprint: object = None,
) -> Generation:
    """Accept an interactive generation, or return the one an earlier request with the same key made.

    ``fingerprint`` (default: the body) is what an Idempotency-Key's request is recognised by; an upload
    passes its files' digests there, since its assetIds are new on every try.
    """
    check_idempotency_key(idempotency_key)
    payload, problems = validate_payload(body, limits.catalog)
    if payload is None:
        codes = {problem.code for problem in problems}
        code = codes.pop() if len(codes) == 1 else None
        raise InvalidGenerationRequest([problem.describe() for problem in problems], error_code=code)
    if asset_issues := await asset_problems(store, org.id, payload.model):
        raise InvalidGenerationRequest([problem.describe() for problem in asset_issues])
    row = generation_row(payload, org.id, now)
    row.idempotency_key = idempotency_key
    row.request_hash = request_hash(body if fingerprint is None else fingerprint)
    cap = plan_limits(org, limits).concurrent_generations
    result = await store.generations.insert(row, active_cap=cap)
    if result.outcome is InsertOutcome.OVER_CAP:
        raise ConcurrencyLimitReached(
            f"concurrency limit reached: the {org.plan} plan allows {cap} generation(s) at once"
        )
    if result.outcome is InsertOutcome.EXISTING and result.generation.request_hash != row.request_hash:
        raise IdempotencyKeyReused("this Idempotency-Key was already used with a different request body")
    return result.generation


async def get_generation(store: Store, org: Organization, generation_id: str) -> Generation:
    """The organization's generation; another organization's is not found."""
    found = await store.generations.get_for_organization(org.id, generation_id)
    if found is None:
        raise NotFoundError(f"generation {generation_id} not found")
    return found
