"""The one policy-decision point. Every read, vread, history, search, `_include` and
`$everything` asks `Access.visible()` for the SQL condition a row must meet, so no route can
forget the policy (Medplum applies it in the repository for the same reason).

What a request may see is the intersection of
* the token's SMART scopes (v2 `patient/Observation.rs`, granular `?category=…`, v1 `.read`),
  narrowed to those the consent grant still covers,
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

import functools
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import and_, exists, false, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from phr_core import budgets
from phr_core.identifiers import pseudonym_system
from phr_core.pairwise_ids import SectorIds
from phr_core.singleflight import SingleFlight
from phr_core.tokens import AccessToken
from phr_server.models import Compartment, StoredResource, TokenIndex

R = StoredResource.__table__
C = Compartment.__table__
T = TokenIndex.__table__

CONSENT_TTL_S = 5.0

_SCOPE_RE = re.compile(
    r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)(?:\?(.+))?$"
)
V1 = {"read": "rs", "write": "cud", "*": "cruds"}


class Denied(Exception):
    """403: the token does not allow this; the message reveals nothing about patients."""


class ConsentUnavailable(Exception):
    """503: the consent service cannot be asked; we fail closed."""


@dataclass(frozen=True)
class Scope:
    context: str  # patient | user | system
    type: str  # a resource type or *
    perms: frozenset[str]  # of c r u d s
    filters: tuple[tuple[str, str], ...] = ()  # granular: (search parameter, value)

    def intersect(self, other: Scope) -> Scope | None:
        """What both scopes allow (a token's scope narrowed by a grant's), or None."""
        if self.context != other.context:
            return None
        if self.type == "*":
            rtype = other.type
        elif other.type in ("*", self.type):
            rtype = self.type
        else:
            return None
        perms = self.perms & other.perms
        if not perms:
            return None
        filters = tuple(dict.fromkeys(self.filters + other.filters))
        return Scope(self.context, rtype, perms, filters)


@functools.lru_cache(maxsize=4096)
def parse_scope(text: str) -> Scope | None:
    """A SMART resource scope, or None for other scopes (openid, launch/patient, …)."""
    m = _SCOPE_RE.match(text)
    if not m or not m.group(3):
        return None
    perms = frozenset(V1.get(m.group(3), m.group(3)))
    filters = tuple(urllib.parse.parse_qsl(m.group(4) or "", keep_blank_values=False))
    return Scope(m.group(1), m.group(2), perms, filters)


# --- the consent service ----------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    id: str
    status: str
    subject: str
    client_id: str
    scopes: tuple[str, ...]
    expires_at: int | None = None

    def active(self, now: float | None = None) -> bool:
        t = time.time() if now is None else now
        return self.status == "active" and (self.expires_at is None or self.expires_at > t)


@dataclass(frozen=True)
class PatientLink:
    municipality: str
    code: str
    relationship: str  # self | child
    birth_month: str | None = None  # YYYY-MM, children only (to match a child across cities)


class ConsentDirectory(Protocol):
    """What the PHR server needs from the consent service."""

    def grant(self, grant_id: str, bearer: str) -> Grant | None: ...

    def patients(self, subject: str, bearer: str) -> list[PatientLink]: ...


def _grant_from(data: dict[str, Any]) -> Grant:
    exp = data.get("expires_at")
    if isinstance(exp, str):  # ISO 8601 is accepted as well as epoch seconds
        from datetime import datetime

        exp = int(datetime.fromisoformat(exp.replace("Z", "+00:00")).timestamp())
    return Grant(
        id=str(data["id"]),
        status=str(data.get("status", "")),
        subject=str(data.get("subject", "")),
        client_id=str(data.get("client_id", "")),
        scopes=tuple(data.get("scopes") or ()),
        expires_at=exp,
    )


class HttpConsentDirectory:
    """The consent service's decision API over HTTP, each answer cached for `ttl` seconds
    (≤ 5): `GET {base}/api/v1/grants/{id}` and `GET {base}/api/v1/subjects/{sub}/patients`.

    Concurrent misses for one path make one call (single flight), and at most `in_flight`
    calls per process wait on the consent service at once; a request that finds no place
    within `queue_s` is refused at once (ConsentUnavailable, a 503 with Retry-After) instead of
    stacking up behind a slow consent service (phr_core.budgets). The TTL counts from the
    moment the call was made, so a revocation is seen within `ttl` of being committed."""

    def __init__(
        self,
        base_url: str,
        ttl: float = CONSENT_TTL_S,
        timeout: float = budgets.CONSENT_DECISION_S,
        service_token: Callable[[], str | None] | None = None,
        in_flight: int = budgets.CONSENT_IN_FLIGHT,
        queue_s: float = budgets.CONSENT_QUEUE_S,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ttl = min(ttl, CONSENT_TTL_S)
        self.timeout = timeout
        self.service_token = service_token
        self.queue_s = queue_s
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._flights: SingleFlight[Any] = SingleFlight()
        self._slots = threading.BoundedSemaphore(in_flight)
        self.calls = 0  # upstream calls made (for tests and the benchmark)

    def _get(self, path: str, bearer: str) -> Any:
        hit = self._cache.get(path)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        try:
            # A follower waits no longer than the leader's own budget.
            return self._flights.do(
                path, lambda: self._load(path, bearer), timeout=self.queue_s + self.timeout
            )
        except TimeoutError:
            raise ConsentUnavailable("consent service busy; try again shortly") from None

    def _load(self, path: str, bearer: str) -> Any:
        if not self._slots.acquire(timeout=self.queue_s):
            raise ConsentUnavailable(
                "consent service busy: too many decisions already waiting; try again shortly"
            )
        try:
            now = time.monotonic()
            self.calls += 1
            token = (self.service_token() if self.service_token else None) or bearer
            req = urllib.request.Request(  # noqa: S310 - the configured consent URL
                self.base_url + path,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - as above
                    value = json.load(resp)
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise ConsentUnavailable(f"consent service answered {exc.code}") from None
                value = None
            except TimeoutError:
                raise ConsentUnavailable(
                    f"consent service did not answer within {self.timeout:g} s"
                ) from None
            except (OSError, ValueError):
                raise ConsentUnavailable("consent service unreachable") from None
        finally:
            self._slots.release()
        with self._lock:
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[path] = (now + self.ttl, value)
        return value

    def grant(self, grant_id: str, bearer: str) -> Grant | None:
        data = self._get(f"/api/v1/grants/{urllib.parse.quote(grant_id, safe='')}", bearer)
        return _grant_from(data) if data else None

    def patients(self, subject: str, bearer: str) -> list[PatientLink]:
        data = self._get(
            f"/api/v1/subjects/{urllib.parse.quote(subject, safe='')}/patients", bearer
        )
        return [
            PatientLink(
                str(p["municipality"]),
                str(p["code"]),
                str(p.get("relationship", "")),
                str(p["birth_month"]) if p.get("birth_month") else None,
            )
            for p in (data or {}).get("patients", [])
        ]


class ClientCredentials:
    """The PHR server's own access token for the consent API (client credentials at the IdP,
    scopes `consent/grants.read consent/patients.read`), kept until shortly before expiry."""

    SCOPE = "consent/grants.read consent/patients.read"

    def __init__(self, token_url: str, client_id: str, secret: str, scope: str = SCOPE) -> None:
        self.token_url, self.client_id, self.secret = token_url, client_id, secret
        self.scope = scope
        self._token: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str | None:
        with self._lock:
            if self._token and self._token[0] > time.time():
                return self._token[1]
            import base64

            basic = base64.b64encode(
                f"{urllib.parse.quote(self.client_id)}:{urllib.parse.quote(self.secret)}".encode()
            ).decode()
            req = urllib.request.Request(  # noqa: S310 - the configured issuer
                self.token_url,
                data=urllib.parse.urlencode(
                    {"grant_type": "client_credentials", "scope": self.scope}
                ).encode(),
                headers={"Authorization": f"Basic {basic}"},
            )
            try:
                with urllib.request.urlopen(req, timeout=budgets.SERVICE_TOKEN_S) as resp:  # noqa: S310 - as above
                    data = json.load(resp)
            except (OSError, ValueError):
                raise ConsentUnavailable("no token for the consent service") from None
            ttl = max(int(data.get("expires_in", 60)) - 30, 5)
            self._token = (time.time() + ttl, data["access_token"])
            return self._token[1]


@dataclass
class InMemoryConsentDirectory:
    """The same contract in process: for tests and single-process development."""

    grants: dict[str, Grant] = field(default_factory=dict)
    links: dict[str, list[PatientLink]] = field(default_factory=dict)

    def grant(self, grant_id: str, bearer: str) -> Grant | None:
        return self.grants.get(grant_id)

    def patients(self, subject: str, bearer: str) -> list[PatientLink]:
        return list(self.links.get(subject, []))


# --- the decision ---------------------------------------------------------------------------


@dataclass
class Access:
    """Who is asking and what they may touch; built once per request by `decide`."""

    token: AccessToken
    raw_token: str
    scopes: list[Scope]
    patient_ids: frozenset[str] = frozenset()
    relationships: dict[str, str] = field(default_factory=dict)
    # An app's sector mapping of ids (phr_server.pairwise); None: the stored ids are served.
    ids: SectorIds | None = None

    @property
    def system(self) -> bool:
        return self.token.grant_id is None and not self.token.first_party

    @property
    def municipality(self) -> str | None:
        return self.token.municipality

    def scopes_for(self, rtype: str, perm: str) -> list[Scope]:
        contexts = ("system",) if self.system else ("patient", "user")
        return [
            s
            for s in self.scopes
            if s.context in contexts and s.type in ("*", rtype) and perm in s.perms
        ]

    def allows(self, rtype: str, perm: str) -> bool:
        return bool(self.scopes_for(rtype, perm))

    def require(self, rtype: str, perm: str) -> None:
        if not self.allows(rtype, perm):
            action = {"r": "read", "s": "search", "c": "create", "u": "update"}.get(perm, perm)
            raise Denied(f"the token's scopes do not allow {action} of {rtype}")

    def visible(self, rtype: str, perm: str) -> ColumnElement[bool]:
        """The SQL condition on `fhir_resource` rows of `rtype` this request may see."""
        from phr_server.search import token_clause  # granular scopes are search criteria

        scopes = self.scopes_for(rtype, perm)
        if not scopes:
            return false()
        conds: list[ColumnElement[bool]] = [R.c.resource_type == rtype]
        if any(not s.filters for s in scopes):
            narrowing: ColumnElement[bool] = true()
        else:
            narrowing = or_(
                *(
                    and_(*(token_clause(rtype, p, v) for p, v in s.filters))
                    for s in scopes
                    if all(_is_token_param(rtype, p) for p, _ in s.filters)
                )
            )
        conds.append(narrowing)
        if self.system:
            conds.append(R.c.municipality == (self.municipality or ""))
            return and_(*conds)
        from phr_server.indexing import TYPES

        spec = TYPES[rtype]
        if rtype == "Patient" or spec.compartment:
            if not self.patient_ids:
                return false()
            conds.append(
                exists(
                    select(1).where(
                        C.c.resource_type == R.c.resource_type,
                        C.c.resource_id == R.c.id,
                        C.c.patient_id.in_(sorted(self.patient_ids)),
                    )
                )
            )
        elif rtype != "Organization":
            return false()  # Provenance and the like are for the connectors only
        return and_(*conds)

    def visible_sql(self, rtype: str, perm: str) -> tuple[str, tuple[str, ...]] | None:
        """`visible()` as an SQL condition on `fhir_resource r` with `?` placeholders, and its
        parameters, for the shapes without granular filters: the read by id runs it without
        building and compiling an expression (a third of a read's CPU). None: use visible().
        tests/phr_server/test_read_path.py checks that both select the same rows."""
        scopes = self.scopes_for(rtype, perm)
        if not scopes:
            return "1 = 0", ()
        if all(s.filters for s in scopes):
            return None
        if self.system:
            return "r.municipality = ?", (self.municipality or "",)
        from phr_server.indexing import TYPES

        if rtype == "Patient" or TYPES[rtype].compartment:
            if not self.patient_ids:
                return "1 = 0", ()
            ids = tuple(sorted(self.patient_ids))
            marks = ", ".join("?" * len(ids))  # placeholders only: the ids are parameters
            sql = (
                # S608: fixed SQL; only '?' placeholders are interpolated, the ids are bound
                # parameters
                "EXISTS (SELECT 1 FROM fhir_compartment c WHERE c.resource_type = r.resource_type"  # noqa: S608 - see above
                f" AND c.resource_id = r.id AND c.patient_id IN ({marks}))"
            )
            return sql, ids
        if rtype == "Organization":
            return "1 = 1", ()
        return "1 = 0", ()


def _is_token_param(rtype: str, name: str) -> bool:
    from phr_server.indexing import TYPES

    p = TYPES[rtype].params.get(name)
    return p is not None and p.kind == "token"


class PatientResolver:
    """(municipality, code) pairs → Patient ids, through the identifier index. Which pairs a
    person reaches comes fresh from the consent service (≤ CONSENT_TTL_S); the Patient id of
    a pair does not change (connectors give Patients the id `patient_id(city, code)`), so a
    found one is kept for `found_ttl`, a missing one (records may arrive any moment) `ttl`."""

    def __init__(self, ttl: float = CONSENT_TTL_S, found_ttl: float = 60.0) -> None:
        self.ttl, self.found_ttl = ttl, found_ttl
        self._cache: dict[tuple[str, str], tuple[float, tuple[str, ...]]] = {}

    def ids(self, session: Any, links: list[PatientLink]) -> dict[str, str]:
        now = time.monotonic()
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
    requested = _parsed(token.scopes)
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
    scopes = list(_narrowed(token.scopes, grant.scopes))
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
    from phr_core.identifiers import patient_id

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


@functools.lru_cache(maxsize=4096)
def _parsed(texts: frozenset[str]) -> tuple[Scope, ...]:
    return tuple(s for s in map(parse_scope, sorted(texts)) if s is not None)


@functools.lru_cache(maxsize=4096)
def _narrowed(requested: frozenset[str], granted: tuple[str, ...]) -> tuple[Scope, ...]:
    """A token's scopes narrowed to what its grant covers (the same few pairs every request)."""
    return tuple(
        both
        for s in _parsed(requested)
        if s.context != "system"
        for g in _parsed(frozenset(granted))
        if (both := s.intersect(g)) is not None
    )


READ_ONLY = frozenset("rs")


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
    scopes = [
        Scope(s.context, s.type, s.perms & READ_ONLY, s.filters)
        for s in requested
        if s.context != "system" and s.perms & READ_ONLY
    ]
    links = directory.patients(token.subject, raw_token)
    rel = resolver.ids(session, links)
    return Access(token, raw_token, scopes, frozenset(rel), rel)
