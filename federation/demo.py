"""Demo data of the federation authority: in development the platform's own services are its
subordinates (with the public halves of their development federation keys), so `phr dev run`
shows a working federation. Each PHR server may claim only the municipalities it is configured
for (a `subset_of` policy on `phr_municipalities`), as a real anchor would limit each city's
server to that city."""

from __future__ import annotations

from typing import Any

from federation import keys
from federation.authority import store
from federation.authority.policies import PLATFORM_SERVICE_POLICY, municipalities_policy
from phr_core.config import Settings
from phr_core.db import Database

# Each local service and the entity types it publishes.
LOCAL_ENTITIES = {
    "idp": ["openid_provider", "federation_entity"],
    "fhir": ["oauth_resource", "federation_entity"],
    "consent": ["openid_relying_party", "oauth_resource", "federation_entity"],
    "connector": ["oauth_client", "federation_entity"],
}
CITY_SERVICES = ("fhir", "connector")  # what each city runs itself


def _policy(settings: Settings, name: str) -> dict[str, Any]:
    if name != "fhir":
        return PLATFORM_SERVICE_POLICY
    return municipalities_policy(
        PLATFORM_SERVICE_POLICY, settings.option("PHR_FHIR_MUNICIPALITIES").split()
    )


def load(db: Database, settings: Settings) -> int:
    if settings.production or keys.authority_hints(settings, "federation"):
        return 0
    return _vouch(db, settings, list(LOCAL_ENTITIES))


def load_city(db: Database, settings: Settings, city: Settings) -> int:
    """The second demo city's PHR server and connector (`city`: their settings), once."""
    if settings.production or keys.authority_hints(settings, "federation"):
        return 0
    return _vouch(db, city, list(CITY_SERVICES))


def _vouch(db: Database, settings: Settings, names: list[str]) -> int:
    added = 0
    with db.session() as s:
        for name in names:
            entity_id = settings.urls[name]
            if store.active(s, entity_id) is not None:
                continue
            jwks = keys.published_jwks(settings, name)
            store.add(
                s,
                entity_id,
                jwks,
                entity_types=LOCAL_ENTITIES[name],
                metadata_policy=_policy(settings, name),
            )
            added += 1
    return added
