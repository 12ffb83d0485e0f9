"""Request dependencies: the app's state and the caller's organization (from ``x-api-key``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from lipsync_api.api.auth import KeyAuthenticator
from lipsync_api.api.runtime import AppState
from lipsync_api.errors import Unauthorized
from lipsync_api.store.models import Organization

API_KEY_HEADER = APIKeyHeader(name="x-api-key", auto_error=False, description="The organization's API key.")


async def get_state(request: Request) -> AppState:
    """The state the lifespan built."""
    state: AppState = request.app.state.lipsync
    return state


State = Annotated[AppState, Depends(get_state)]


async def get_authenticator(request: Request) -> KeyAuthenticator:
    """The app's key authenticator (built by the lifespan)."""
    authenticator: KeyAuthenticator = request.app.state.authenticator
    return authenticator


async def current_organization(
    authenticator: Annotated[KeyAuthenticator, Depends(get_authenticator)],
    key: Annotated[str | None, Security(API_KEY_HEADER)],
) -> Organization:
    """The organization owning the request's API key; 401 when it is missing, unknown or revoked."""
    if not key:
        raise Unauthorized("missing x-api-key header")
    org = await authenticator.organization_for(key)
    if org is None:
        raise Unauthorized("invalid or revoked API key")
    return org


CurrentOrg = Annotated[Organization, Depends(current_organization)]


def split_values(values: list[str] | None) -> list[str] | None:
    """Query values given as repeated keys, comma-separated lists, or both; None when none given."""
    if not values:
        return None
    parts = [part.strip() for value in values for part in value.split(",")]
    return [part for part in parts if part] or None
