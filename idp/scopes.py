"""Scopes: which resource server each belongs to (their plain words: phr_core.scope_words).

SMART App Launch 2 scopes (`patient/Immunization.rs`, v1 `patient/Immunization.read`) and
`system/…` scopes go to the FHIR server; `consent/…` scopes to the consent service's API.
"""

from __future__ import annotations

from collections.abc import Iterable

from idp.errors import shown
from phr_core.scope_words import SMART_RE
from phr_core.scope_words import describe as describe  # the consent screen's words

OIDC_SCOPES = {"openid", "offline_access"}
SMART_CONTEXT_SCOPES = {"launch/patient", "fhirUser"}
CONSENT_SCOPES = {
    "consent/grants.read",
    "consent/grants.write",
    "consent/patients.read",
    "consent/linkage",
    "consent/arrivals.write",
    "consent/notices.read",
}
# The consent service's client-credentials scope at the PHR server (phr_server/erase.py).
PHR_SERVICE_SCOPES = {"phr/erase"}
# OIDC Core 5.4 claim scopes: accepted wherever scopes are given (clients file, registration,
# /authorize) and never granted: apps get no names or addresses here, and many RPs ask for
# `profile email` by default. One behaviour everywhere.
IGNORED_SCOPES = {"profile", "email", "address", "phone"}


def is_first_party_scope(scope: str) -> bool:
    """What the platform's own portal may hold without a consent grant: sign-in, refresh, and
    reading (never writing) the signed-in person's records through `user/` SMART scopes."""
    if scope in OIDC_SCOPES:
        return True
    m = SMART_RE.match(scope)
    if not m or m.group(1) != "user":
        return False
    perms = m.group(3)
    return perms == "read" or (bool(perms) and set(perms) <= {"r", "s"})


def app_scope_refusal(scope: Iterable[str]) -> str | None:
    """Why an app (anything but the platform's own portal) may not hold these scopes, or None.
    Apps read the one record the person chooses on the consent screen: `patient/` scopes.
    `user/` scopes would read everyone the person may see (themself and their children)
    while the screen asked to choose one, so they are the portal's alone (issue 14)."""
    for sc in scope:
        m = SMART_RE.match(sc)
        if m and m.group(1) == "user":
            return (
                f"scope {shown(sc)}: apps get patient/ scopes, which open the record the person "
                f"chooses (ask for {shown('patient/' + sc.split('/', 1)[1])}); user/ scopes are "
                "for the platform's own portal"
            )
    return None


def is_resource_scope(scope: str) -> bool:
    return bool(SMART_RE.match(scope))


def is_known(scope: str) -> bool:
    return (
        scope in OIDC_SCOPES
        or scope in SMART_CONTEXT_SCOPES
        or scope in CONSENT_SCOPES
        or scope in PHR_SERVICE_SCOPES
        or is_resource_scope(scope)
    )


def audience_kind(scope: str) -> str | None:
    """`fhir`, `consent` or None (scopes that only concern the IdP)."""
    if is_resource_scope(scope) or scope in SMART_CONTEXT_SCOPES or scope in PHR_SERVICE_SCOPES:
        return "fhir"
    if scope in CONSENT_SCOPES:
        return "consent"
    return None
