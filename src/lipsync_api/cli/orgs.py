"""``lipsync-api orgs``: create organizations."""

from __future__ import annotations

from typing import Annotated

import typer

from lipsync_api.cli.console import results
from lipsync_api.cli.store_access import with_store
from lipsync_api.domain.plans import Plan
from lipsync_api.store import Store
from lipsync_api.store.models import Organization

orgs_app = typer.Typer(help="Manage organizations.", no_args_is_help=True)


@orgs_app.command("create")
def create_org(
    name: Annotated[str, typer.Option(help="Organization name.")],
    plan: Annotated[Plan, typer.Option(help="Plan tier.")] = Plan.FREE,
) -> None:
    """Create an organization; prints its id and webhook secret (shown once)."""

    async def action(store: Store) -> Organization:
        return await store.organizations.create(name, plan.value)

    org = with_store(action)
    results.print(f"organization id: {org.id}", highlight=False)
    results.print(f"webhook secret (shown once): {org.webhook_secret}", highlight=False)
