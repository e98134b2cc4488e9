"""Who may reach what: the decision behind a request's Access.

What a request may see is the intersection of
* the token's SMART scopes (scopes.py), narrowed to those the consent grant still covers,
* the consent grant named in the token being active right now (asked from the consent service
  through a cache of at most a few seconds, so a revocation bites within seconds), and
* the Patients the person may reach: their own and their children's, as (municipality,
  pseudonymous code) pairs from the consent service, mapped to Patient ids by identifier;
  when the token names a SMART launch `patient` (the record the person chose for the app on
  the consent screen), every scope reaches that one alone (`user/` ones too).

Connector (client-credentials) tokens carry `system/` scopes and a `municipality`: they see
and change only rows of that municipality.

The platform's own portal holds no consent grant: the person signed in there to see their own
data. Its tokens carry `phr_first_party` (set by the IdP, under its signature, only for its
static PHR-sector portal client) and reach, read-only, the same Patients as above: the
person's own and their children's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from phr_core.identifiers import patient_id, pseudonym_system
from phr_core.tokens import AccessToken
from phr_server.models import TokenIndex, table_of
from phr_server.policy.access import Access
from phr_server.policy.consent_client import CONSENT_TTL_S, ConsentDirectory, PatientLink
from phr_server.policy.errors import Denied
from phr_server.policy.scopes import Scope, narrowed, parsed, read_only

T = table_of(TokenIndex)


class PatientResolver:
    """(municipality, code) pairs → Patient ids, through the identifier index. Which pairs a
    person reaches comes fresh from the consent service (≤ CONSENT_TTL_S); the Patient id of
    a pair does not change (connectors give Patients the id `patient_id(city, code)`), so a
    found one is kept for `found_ttl`, a missing one (records may arrive any moment) `ttl`."""

    def __init__(
        self,
        ttl: float = CONSENT_TTL_S,
        found_ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,  # tests pass their own: no sleeping
    ) -> None:
        self.ttl, self.found_ttl, self.clock = ttl, found_ttl, clock
        self._cache: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}

    def ids(self, session: Any, links: list[PatientLink]) -> dict[str, str]:
        now = self.clock()
        out: dict[str, str] = {}
        for link in links:
            key = (link.municipality, link.code)
            hit = self._cache.get(key)
            if hit is None or hit[0] <= now:
                found = tuple(
                    session.scalars(
                        select(T.c.resource_id).where(
                            T.c.resource_type == "Patient",
                            T.c.param == "identifier",
                            T.c.code == link.code,
                            T.c.system == pseudonym_system(link.municipality),
                        )
                    )
                )
                if len(self._cache) > 10000:
                    self._cache.clear()
                ttl = self.found_ttl if found else self.ttl
                self._cache[key] = hit = (now + ttl, found)
            for pid in hit[1]:
                out[pid] = link.relationship
        return out


def decide(
    token: AccessToken,
    raw_token: str,
    directory: ConsentDirectory,
    resolver: PatientResolver,
    session: Any,
) -> Access:
    """Build the request's Access, or raise Denied / ConsentUnavailable."""
    requested = parsed(token.scopes)
    if token.grant_id is None and token.first_party:
        return _first_party(token, raw_token, requested, directory, resolver, session)
    if token.grant_id is None:
        if not token.municipality or not re.fullmatch(r"\d{6}", token.municipality):
            raise Denied("a client token needs a six-digit municipality")
        return Access(token, raw_token, [s for s in requested if s.context == "system"])
    grant = directory.grant(token.grant_id, raw_token)
    if grant is None or not grant.active():
        raise Denied("the consent grant behind this token is not active")
    if grant.subject != token.subject or grant.client_id != token.client_id:
        raise Denied("the consent grant behind this token belongs to another subject or app")
    scopes = list(narrowed(token.scopes, grant.scopes))
    links = directory.patients(token.subject, raw_token)
    rel = resolver.ids(session, links)
    launch = token.claims.get("patient")
    if isinstance(launch, str):
        # SMART: the app opens the one person the person chose for it, whatever its scopes
        # (a `user/` scope beside a launch patient reaches no further: issue 14).
        reach = launch_reach(launch, links, lambda link: resolver.ids(session, [link]))
        rel = {pid: r for pid, r in rel.items() if pid in reach}
    return Access(token, raw_token, scopes, frozenset(rel), rel)


def launch_reach(
    launch: str, links: list[PatientLink], ids: Callable[[PatientLink], dict[str, str]]
) -> set[str]:
    """The Patient ids a SMART launch `patient` opens: the chosen record, and the same person's
    records in the other cities they are linked to (a family that moved has a record, under
    another code, in each city; each city's PHR server holds only its own). The same person:
    yourself for yourself; for a child, the child of the same birth month (twins are both).
    Empty when the chosen record is not among the person's links any more."""
    chosen = next((k for k in links if patient_id(k.municipality, k.code) == launch), None)
    if chosen is None:
        return set()
    same = [
        k
        for k in links
        if k == chosen
        or (
            k.relationship == chosen.relationship
            and k.municipality != chosen.municipality
            and (chosen.relationship == "self" or _same_month(k, chosen))
        )
    ]
    reach = {launch}
    for k in same:
        reach.update(ids(k))
    return reach


def _same_month(a: PatientLink, b: PatientLink) -> bool:
    return a.birth_month is not None and a.birth_month == b.birth_month


def _first_party(
    token: AccessToken,
    raw_token: str,
    requested: tuple[Scope, ...],
    directory: ConsentDirectory,
    resolver: PatientResolver,
    session: Any,
) -> Access:
    """The portal reading for the signed-in person: no grant to check, so only read and search,
    only `user`/`patient` scopes, and only the person's own and children's Patients."""
    if token.municipality:
        raise Denied("a first-party token cannot name a municipality")
    scopes = read_only(requested)
    links = directory.patients(token.subject, raw_token)
    rel = resolver.ids(session, links)
    return Access(token, raw_token, scopes, frozenset(rel), rel)
