"""`phr purge`: every service's housekeeping in one scheduled command, so an operator has one
line in the scheduler (docs/operations.md, "Purge schedule") instead of one per service.

What goes (each a grace period after it stopped mattering; docs/retention.md has the table):
the IdP's expired codes, tokens, sessions, challenges, replay records and attempt counters
(`idp.housekeeping.purge`, which running IdP workers also do hourly) and its copy of grants that
ended 90 days ago (`purge_grants`); the PHR servers' expired DPoP proof ids; the consent
service's link requests no city answered (their card attributes with them) and the portal's
stored tokens of sessions left idle.

What stays, by design: the access history (AuditEvents), the consent trail (every version of
every consent), connector provenance and the IdP's sign-in audit. The privacy notice and the
delete page promise that the access history and the consent trail are kept with no upper limit
until the city running the platform sets one, so nothing here deletes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from consent import cache, linkage
from consent.models import utcnow
from idp import housekeeping
from phr_core.config import Settings
from phr_core.db import Database
from phr_server import dpop as fhir_dpop
from portal.token_store import IDLE_LIMIT, TokenStore

LINK_REQUEST_DAYS = 30  # as `phr consent expire-link-requests`


@dataclass(frozen=True)
class Purged:
    service: str
    kind: str
    count: int


def purge_all(
    settings: Settings,
    *,
    link_request_days: int = LINK_REQUEST_DAYS,
    portal_idle: timedelta = IDLE_LIMIT,
) -> list[Purged]:
    """Run every service's purge once, against the databases `settings` names."""
    out: list[Purged] = []
    idp = Database(settings.database_urls["idp"])
    try:
        with idp.session() as s:
            counts = housekeeping.purge(s)
            counts["ended grants (IdP copy)"] = housekeeping.purge_grants(s)
        out += [Purged("idp", kind, n) for kind, n in counts.items()]
    finally:
        idp.dispose()
    fhir = Database(settings.database_urls["fhir"])
    try:
        with fhir.session() as s:
            out.append(Purged("fhir", "DPoP proof ids", fhir_dpop.purge_expired(s)))
    finally:
        fhir.dispose()
    consent = Database(settings.database_urls["consent"])
    # Closing link requests changes what running consent workers cache: the change log tells
    # every host, the stamp file the workers on this one (as `phr consent …` commands do).
    cache.install(consent, settings.var_dir / cache.STAMP_FILE)
    try:
        with consent.session() as s:
            n = linkage.expire_pending(s, utcnow() - timedelta(days=link_request_days))
        out.append(Purged("consent", "unanswered link requests", n))
        store = TokenStore(consent, settings.secret("PHR_CONSENT_SECRET_KEY"))
        out.append(Purged("consent", "idle portal sessions' tokens", store.purge_idle(portal_idle)))
    finally:
        consent.dispose()
    return out
