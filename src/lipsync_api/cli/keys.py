"""``lipsync-api keys``: create, list and revoke API keys."""

from __future__ import annotations

from typing import Annotated

import typer

from lipsync_api.cli.console import console, results
from lipsync_api.cli.store_access import with_store
from lipsync_api.store import Store
from lipsync_api.store.models import ApiKey
from lipsync_api.store.organizations import NewApiKey

keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)


@keys_app.command("create")
def create_key(
    org: Annotated[str, typer.Option(help="Organization id.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "default",
) -> None:
    """Issue a key for an organization; prints the key once."""

    async def action(store: Store) -> NewApiKey | None:
        if await store.organizations.get(org) is None:
            return None
        return await store.organizations.create_api_key(org, name)

    issued = with_store(action)
    if issued is None:
        console.print(f"error: no organization {org}", highlight=False)
        raise typer.Exit(1)
    results.print(f"key id: {issued.record.id}", highlight=False)
    results.print(f"API key (shown once): {issued.key}", highlight=False)


@keys_app.command("list")
def list_keys(org: Annotated[str, typer.Option(help="Organization id.")]) -> None:
    """List an organization's keys (id, name, prefix, created, revoked)."""

    async def action(store: Store) -> list[ApiKey]:
        return await store.organizations.list_api_keys(org)

    for key in with_store(action):
        revoked = key.revoked_at.isoformat() if key.revoked_at else "-"
        line = (
            f"{key.id}  {key.name}  {key.prefix}...  created {key.created_at.isoformat()}  revoked {revoked}"
        )
        results.print(line, highlight=False)


@keys_app.command("revoke")
def revoke_key(key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`).")]) -> None:
    """Revoke a key by its id."""

    async def action(store: Store) -> bool:
        key = await store.organizations.get_api_key(key_id)
        return key is not None and await store.organizations.revoke_api_key(key.organization_id, key_id)

    if not with_store(action):
        console.print(f"error: no active key {key_id}", highlight=False)
        raise typer.Exit(1)
    results.print(f"revoked {key_id}", highlight=False)
