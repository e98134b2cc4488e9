"""Demo data for the IdP: the platform's own clients, registered statically."""

from __future__ import annotations

from idp.models import Client
from phr_core.config import Settings
from phr_core.db import Database

PHR_SECTOR = "phr"  # the named sector shared by the portal, PHR servers and connectors


def platform_clients(settings: Settings) -> list[Client]:
    """The clients every deployment has: the portal signs citizens in through the IdP."""
    portal = settings.urls["consent"]
    return [
        Client(
            client_id="phr-portal",
            client_name="PHR portal (consent service)",
            registration="static",
            sector=PHR_SECTOR,
            client_metadata={
                "redirect_uris": [f"{portal}/auth/callback"],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "client_secret_basic",
                "scope": "openid",
            },
        )
    ]


def load(db: Database, settings: Settings) -> int:
    """Add missing demo clients; running it twice adds nothing."""
    added = 0
    with db.session() as s:
        for client in platform_clients(settings):
            if s.get(Client, client.client_id) is None:
                s.add(client)
                added += 1
    return added
