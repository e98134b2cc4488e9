"""The consent service as the PHR server asks it: whether a grant is active, and which
Patients (municipality, pseudonymous code) a person reaches. Over HTTP in production
(`HttpConsentDirectory`, authenticated by `ClientCredentials` at the IdP), in process for
tests and single-process development (`InMemoryConsentDirectory`); both keep one contract
(`ConsentDirectory`)."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from phr_core import budgets, metrics, request_ids
from phr_core.singleflight import SingleFlight
from phr_server.policy import keepalive
from phr_server.policy.errors import ConsentUnavailable

CONSENT_TTL_S = 5.0


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
        clock: Callable[[], float] = time.monotonic,  # tests pass their own: no sleeping
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.ttl = min(ttl, CONSENT_TTL_S)
        self.timeout = timeout
        self.service_token = service_token
        self.queue_s = queue_s
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._flights: SingleFlight[Any] = SingleFlight()
        self._slots = threading.BoundedSemaphore(in_flight)
        # kept-alive connections, one per call in flight at most (keepalive.py)
        self._pool = keepalive.Pool(self.base_url, timeout, in_flight)
        self.calls = 0  # upstream calls made (for tests and the benchmark)

    def _get(self, path: str, bearer: str) -> Any:
        hit = self._cache.get(path)
        if hit is not None and hit[0] > self.clock():
            metrics.CONSENT_CACHE.labels("fhir", "hit").inc()
            return hit[1]
        metrics.CONSENT_CACHE.labels("fhir", "miss").inc()
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
            now = self.clock()
            self.calls += 1
            token = (self.service_token() if self.service_token else None) or bearer
            req = urllib.request.Request(  # noqa: S310 - the configured consent URL
                self.base_url + path,
                headers=request_ids.outgoing(
                    {"Authorization": f"Bearer {token}", "Accept": "application/json"}
                ),
            )
            try:
                value = self._fetch(req)
            except TimeoutError:
                raise ConsentUnavailable(
                    f"consent service did not answer within {self.timeout:g} s"
                ) from None
            except (OSError, ValueError, http.client.HTTPException):
                raise ConsentUnavailable("consent service unreachable") from None
        finally:
            self._slots.release()
        with self._lock:
            if len(self._cache) > 10000:
                self._cache.clear()
            self._cache[path] = (now + self.ttl, value)
        return value

    def _fetch(self, req: urllib.request.Request) -> Any:
        """The JSON answer to `req`, None for a 404; ConsentUnavailable for other statuses."""
        if self._pool.proxied:  # through the configured proxy, as urllib finds it
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - the configured consent URL
                    return json.load(resp)
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise ConsentUnavailable(f"consent service answered {exc.code}") from None
                return None
        answer = self._pool.get(req.selector, dict(req.header_items()))
        if answer.status == 404:
            return None
        if not 200 <= answer.status < 300:
            raise ConsentUnavailable(f"consent service answered {answer.status}")
        return json.loads(answer.body)

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
            basic = base64.b64encode(
                f"{urllib.parse.quote(self.client_id)}:{urllib.parse.quote(self.secret)}".encode()
            ).decode()
            req = urllib.request.Request(  # noqa: S310 - the configured issuer
                self.token_url,
                data=urllib.parse.urlencode(
                    {"grant_type": "client_credentials", "scope": self.scope}
                ).encode(),
                headers=request_ids.outgoing({"Authorization": f"Basic {basic}"}),
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
