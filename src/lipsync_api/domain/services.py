"""The use cases, in one import: routes and the CLI translate their input and delegate here.

Generations live in ``generation_service``, batches in ``batch_service``; every use case takes the store
and the ``ServiceLimits`` explicitly.
"""

from __future__ import annotations

from lipsync_api.domain.batch_service import (
    cancel_batch,
    create_batch,
    dry_run_batch,
    get_batch,
    validate_batch_file,
)
from lipsync_api.domain.generation_service import (
    ServiceLimits,
    ValidPayload,
    create_generation,
    get_generation,
    plan_limits,
    request_hash,
    validate_payload,
)

__all__ = [
    "ServiceLimits",
    "ValidPayload",
    "cancel_batch",
    "create_batch",
    "create_generation",
    "dry_run_batch",
    "get_batch",
    "get_generation",
    "plan_limits",
    "request_hash",
    "validate_batch_file",
    "validate_payload",
]
