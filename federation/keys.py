"""Which federation key and which trust anchors a service uses, from the settings."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from federation import jose
from phr_core.config import ConfigError, Settings
from phr_core.services import get_service

# An entry of a federation secret written `next:SECRET` is published but signs nothing yet:
# how the trust anchor's new key reaches every service's trust anchor file before it signs.
STAGED = "next:"


@functools.lru_cache(maxsize=16)
def _keys_for(secret: str) -> tuple[jose.FederationKey, ...]:
    """Every key a secret holds, the signing one first: one private JWK as JSON, or random
    strings separated by spaces, newest first (`phr federation rotate-key` puts a new one in
    front; the older ones stay published until retired), a staged one (`next:`) after them."""
    text = secret.strip()
    if text.startswith("{"):
        return (jose.federation_key(text),)
    parts = text.split()
    live = [p for p in parts if not p.startswith(STAGED)]
    staged = [p.removeprefix(STAGED) for p in parts if p.startswith(STAGED)]
    if not live:
        raise ValueError("no key that signs (only a staged one)")
    return tuple(jose.federation_key(p) for p in live + staged)


def secret_name(service_name: str) -> str:
    """The service's `…FEDERATION_KEY` secret."""
    return next(
        sec.env for sec in get_service(service_name).secrets if sec.env.endswith("FEDERATION_KEY")
    )


def entity_keys(settings: Settings, service_name: str) -> tuple[jose.FederationKey, ...]:
    """The service's federation keys, newest (the signing one) first; all are published."""
    name = secret_name(service_name)
    try:
        return _keys_for(settings.secret(name))
    except ValueError as exc:
        raise ConfigError(f"{name} is not a usable key: {exc}") from None


def entity_key(settings: Settings, service_name: str) -> jose.FederationKey:
    """The service's federation signing key (the newest of its `…FEDERATION_KEY` secret)."""
    return entity_keys(settings, service_name)[0]


def published_jwks(settings: Settings, service_name: str) -> dict[str, Any]:
    """The public halves of every key the service holds, as its configuration publishes them."""
    return jose.public_jwks(*entity_keys(settings, service_name))


def authority_hints(settings: Settings, service_name: str) -> list[str]:
    """The superiors an entity names: the federation authority's own configured superiors, or,
    for every other service, the authority at PHR_FEDERATION_URL."""
    if service_name == "federation":
        return settings.option("PHR_FEDERATION_AUTHORITY_HINTS").split()
    return [settings.urls["federation"]]


def trust_anchors(settings: Settings) -> dict[str, dict[str, Any]]:
    """{anchor entity id: JWK Set} from PHR_FEDERATION_TRUST_ANCHOR_FILE. In development,
    without the file, the local authority is trusted as anchor with its own key (when it is
    an anchor, i.e. has no superiors)."""
    path = Path(settings.option("PHR_FEDERATION_TRUST_ANCHOR_FILE"))
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"PHR_FEDERATION_TRUST_ANCHOR_FILE {path}: {exc}") from None
        if not isinstance(data, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("keys"), list) for v in data.values()
        ):
            raise ConfigError(
                f"PHR_FEDERATION_TRUST_ANCHOR_FILE {path}: expected {{entity id: JWK Set}}"
            )
        return data
    if settings.production or authority_hints(settings, "federation"):
        return {}
    return {settings.urls["federation"]: published_jwks(settings, "federation")}
