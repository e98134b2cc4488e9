"""Where a person's approval of an app is recorded. With the consent service (the default) the
grant lives there, its id goes into access tokens, and the PHR server and the portal see and
revoke it; the IdP keeps a mirror row so it need not ask again, and asks the consent service
whether a grant is still active before honouring it (refresh, skipping the consent screen)."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from idp.clients import ClientView
from idp.context import GrantStore, IdP
from idp.models import Grant
from idp.patient_choice import PatientChoice
from idp.sealing import seal_for
from idp.subjects import PHR_SECTOR
from idp.tokens import new_handle, now_utc, sign
from phr_core import budgets, request_ids
from phr_core.grant_description import GrantFacts
from phr_core.identifiers import patient_id

log = logging.getLogger(__name__)

GRANT_LIFETIME = timedelta(days=365)
SERVICE_TOKEN_TTL_S = 300

# The data categories of consent records (consent service) each resource type belongs to.
CATEGORIES = {
    "Immunization": ("vaccination",),
    "Observation": ("checkup", "mch"),
    "Encounter": ("checkup", "mch"),
    "Condition": ("claims",),
    "Procedure": ("claims",),
    "MedicationDispense": ("claims",),
    "ExplanationOfBenefit": ("claims",),
    "Claim": ("claims",),
    "Coverage": ("claims",),
    "*": ("mch", "vaccination", "checkup", "claims"),
}


class GrantUnavailable(RuntimeError):
    """The consent service could not record or answer; the person is told to try later."""


def categories_of(scope: list[str]) -> list[str]:
    found: list[str] = []
    for sc in scope:
        if "/" not in sc or "." not in sc:
            continue
        resource = sc.split("/", 1)[1].split(".", 1)[0]
        for cat in CATEGORIES.get(resource, ()):
            if cat not in found:
                found.append(cat)
    return found


def grant_expiry() -> datetime:
    """When a grant made now ends: the consent screen shows this date, the grant records it."""
    return now_utc() + GRANT_LIFETIME


def description_facts(
    client: ClientView, scope: list[str], patient: PatientChoice | None = None
) -> GrantFacts:
    """What the consent screen tells the person, and the consent service keeps for the portal."""
    return GrantFacts.of_client(
        client.name, client.meta, scope, grant_expiry(), patient.facts if patient else None
    )


def wants_patient(scope: list[str]) -> bool:
    """SMART: a `patient/` scope reads one patient's record, named as `patient` in the token
    response; the person picks which (themself or a child) on the consent screen."""
    return any(sc.startswith("patient/") for sc in scope)


def _choice(p: dict) -> PatientChoice:
    city = str(p["municipality"])
    return PatientChoice(
        id=patient_id(city, str(p["code"])),
        relationship=str(p.get("relationship", "")),
        city=str(p.get("municipality_name") or city),
        city_en=str(p.get("municipality_name_en") or city),
        birth_month=p.get("birth_month"),
    )


class LocalGrants:
    """Grants kept only at the IdP (PHR_IDP_GRANT_STORE=local)."""

    calls_out = False  # answers from the IdP's own database

    def record(
        self,
        ctx: IdP,
        s: Session,
        person_id: str,
        client: ClientView,
        scope: list[str],
        lang: str,
        patient: str | None = None,
        details: dict[str, object] | None = None,
    ) -> Grant:
        grant = Grant(
            id=new_handle(16),
            person_id=person_id,
            client_id=client.client_id,
            scope=" ".join(scope),
            patient=patient,
            expires_at=grant_expiry(),
        )
        s.add(grant)
        return grant

    def is_active(self, ctx: IdP, s: Session, grant: Grant) -> bool:
        return grant.revoked_at is None

    def patients(self, ctx: IdP, s: Session, person_id: str) -> list[PatientChoice]:
        return []  # links to cities live in the consent service


class ConsentServiceGrants:
    """Grants recorded with the consent service's API (consent/API.md), called with an access
    token the IdP mints for itself."""

    calls_out = True  # asks the consent service over HTTP

    def __init__(self) -> None:
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def _service_token(self, ctx: IdP) -> str:
        with self._lock:
            if self._token and self._token[1] - time.time() > 30:
                return self._token[0]
            now = int(time.time())
            audience = ctx.audience("consent")
            claims = {
                "iss": ctx.issuer,
                "sub": "phr-idp",
                "client_id": "phr-idp",
                "aud": audience,
                "scope": "consent/grants.write consent/grants.read consent/patients.read",
                "iat": now,
                "exp": now + SERVICE_TOKEN_TTL_S,
                "jti": new_handle(16),
            }
            token = seal_for(ctx, audience, sign(ctx, claims, typ="at+jwt"))
            self._token = (token, now + SERVICE_TOKEN_TTL_S)
            return token

    def _call(self, ctx: IdP, method: str, path: str, body: dict | None = None) -> dict:
        # The decision API's own pool (PHR_CONSENT_API_URL); the token's audience stays the
        # consent service's public URL.
        url = ctx.settings.consent_api_url + path
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(  # noqa: S310 (configured service URL)
            url,
            data=data,
            method=method,
            headers=request_ids.outgoing(
                {
                    "Authorization": "Bearer " + self._service_token(ctx),
                    "Content-Type": "application/json",
                }
            ),
        )
        try:
            with urllib.request.urlopen(req, timeout=budgets.CONSENT_DECISION_S) as resp:  # noqa: S310 - as above
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return {"status": "unknown"}
            log.warning("consent service answered %s to %s %s", exc.code, method, path)
            raise GrantUnavailable(f"consent service error {exc.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("consent service unreachable (%s)", type(exc).__name__)
            raise GrantUnavailable("consent service unreachable") from None

    def record(
        self,
        ctx: IdP,
        s: Session,
        person_id: str,
        client: ClientView,
        scope: list[str],
        lang: str,
        patient: str | None = None,
        details: dict[str, object] | None = None,
    ) -> Grant:
        expires = grant_expiry()
        doc = self._call(
            ctx,
            "POST",
            "/api/v1/grants",
            {
                "subject": ctx.subjects.subject(s, PHR_SECTOR, person_id),
                "client_id": client.client_id,
                "client_name": client.name,
                "scopes": scope,
                "categories": categories_of(scope),
                "purpose": client.purpose(lang) or client.name,
                "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "language": lang,
                "collection_method": "idp-consent-screen",
                "details": details,
            },
        )
        grant_id = doc.get("id")
        if not isinstance(grant_id, str):
            raise GrantUnavailable("consent service returned no grant id")
        grant = Grant(
            id=grant_id,
            person_id=person_id,
            client_id=client.client_id,
            scope=" ".join(scope),
            patient=patient,
            expires_at=_parse_time(doc.get("expires_at")) or expires,
        )
        s.add(grant)
        return grant

    def patients(self, ctx: IdP, s: Session, person_id: str) -> list[PatientChoice]:
        sub = ctx.subjects.subject(s, PHR_SECTOR, person_id)
        doc = self._call(
            ctx, "GET", f"/api/v1/subjects/{urllib.parse.quote(sub, safe='')}/patients"
        )
        return [_choice(p) for p in doc.get("patients", []) if isinstance(p, dict)]

    def is_active(self, ctx: IdP, s: Session, grant: Grant) -> bool:
        if grant.revoked_at is not None:
            return False
        # Asked every time (the consent service answers from its own cache in well under a
        # millisecond): a revocation in the portal must stop the very next refresh.
        active = self._call(ctx, "GET", f"/api/v1/grants/{grant.id}").get("status") == "active"
        if not active:
            grant.revoked_at = now_utc()  # mirror it, so it is never asked again
        return active


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def grant_store(kind: str) -> GrantStore:
    if kind == "local":
        return LocalGrants()
    if kind == "consent":
        return ConsentServiceGrants()
    raise ValueError(f"PHR_IDP_GRANT_STORE={kind!r} must be `consent` or `local`")
