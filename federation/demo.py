"""Demo data of the federation authority: in development the platform's own services are its
subordinates (with the public halves of their development federation keys), so `phr dev run`
shows a working federation."""

from __future__ import annotations

from federation import jose, keys
from federation.authority import store
from federation.authority.policies import PLATFORM_SERVICE_POLICY
from phr_core.config import Settings
from phr_core.db import Database

# Each local service and the entity types it publishes.
LOCAL_ENTITIES = {
    "idp": ["openid_provider", "federation_entity"],
    "fhir": ["oauth_resource", "federation_entity"],
    "consent": ["openid_relying_party", "oauth_resource", "federation_entity"],
    "connector": ["oauth_client", "federation_entity"],
}


def load(db: Database, settings: Settings) -> int:
    if settings.production or keys.authority_hints(settings, "federation"):
        return 0
    added = 0
    with db.session() as s:
        for name, types in LOCAL_ENTITIES.items():
            entity_id = settings.urls[name]
            if store.active(s, entity_id) is not None:
                continue
            jwks = jose.public_jwks(keys.entity_key(settings, name))
            store.add(
                s, entity_id, jwks, entity_types=types, metadata_policy=PLATFORM_SERVICE_POLICY
            )
            added += 1
    return added
