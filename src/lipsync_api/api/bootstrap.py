"""The first start on an empty database makes a default enterprise organization and shows its key once."""

from __future__ import annotations

from collections.abc import Callable

from lipsync_api.config import Settings
from lipsync_api.domain.plans import Plan
from lipsync_api.store import Store

DEFAULT_ORG_NAME = "default"


def _say(text: str) -> None:
    print(text, flush=True)  # on stdout, unbuffered: a piped log shows the key at once


async def bootstrap_organization(store: Store, settings: Settings, say: Callable[[str], None] = _say) -> bool:
    """Create the default organization and its key when there is no organization; True when it did."""
    if await store.organizations.count() > 0:
        return False
    org = await store.organizations.create(DEFAULT_ORG_NAME, Plan.ENTERPRISE.value)
    configured = settings.bootstrap_api_key.get_secret_value() if settings.bootstrap_api_key else None
    issued = await store.organizations.create_api_key(org.id, "bootstrap", key=configured)
    say(f"Created organization {org.id} ({DEFAULT_ORG_NAME}, enterprise plan).")
    if configured is None:
        say(f"API key (shown once): {issued.key}")
    else:
        say("API key: the one given in LIPSYNC_BOOTSTRAP_API_KEY")
    say(f"Webhook secret (shown once): {org.webhook_secret}")
    return True
