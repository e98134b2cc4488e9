"""Trust marks (OpenID Federation 1.0 section 7): signed statements that an entity meets a
programme's requirements. Ours is "certified PHR app", issued by a trust-mark issuer the trust
anchor names in `trust_mark_issuers`, checked with that issuer's federation key, its expiry
and (when asked) its issuer's status endpoint, so a revoked mark stops counting at once."""

from __future__ import annotations

import time
from typing import Any

from federation import jose
from federation.errors import MALFORMED, TRUST_MARK, FederationError

TYP = "trust-mark+jwt"
STATUS_TYP = "trust-mark-status-response+jwt"
CERTIFIED_PHR_APP = "https://phr.example.jp/trust-marks/certified-phr-app"
STATUSES = ("active", "expired", "revoked", "invalid")


def issue(
    issuer: str,
    key: jose.FederationKey,
    subject: str,
    trust_mark_type: str = CERTIFIED_PHR_APP,
    *,
    lifetime_s: int = 30 * 24 * 3600,
    now: int | None = None,
    ref: str | None = None,
) -> str:
    """A signed trust mark for `subject`."""
    now = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "trust_mark_type": trust_mark_type,
        "iat": now,
        "exp": now + lifetime_s,
    }
    if ref:
        claims["ref"] = ref
    return jose.sign(claims, key, TYP)


def issuer_of(token: str) -> tuple[str, str]:
    """(issuer, trust_mark_type) of a mark, unverified: to find which key must have signed it."""
    _, claims = jose.peek(token)
    iss, mark_type = claims.get("iss"), claims.get("trust_mark_type")
    if not isinstance(iss, str) or not isinstance(mark_type, str):
        raise FederationError(MALFORMED, "trust mark: iss and trust_mark_type are required")
    return iss, mark_type


def verify(
    token: str,
    *,
    subject: str,
    issuer_jwks: dict[str, Any],
    allowed_issuers: dict[str, list[str]],
    now: float | None = None,
) -> dict[str, Any]:
    """The mark's claims once it is signed by an issuer the trust anchor allows for its type,
    about `subject`, and not expired."""
    iss, mark_type = issuer_of(token)
    allowed = allowed_issuers.get(mark_type)
    if allowed is None:
        raise FederationError(TRUST_MARK, f"trust mark type {mark_type} is not recognised")
    if allowed and iss not in allowed:
        raise FederationError(TRUST_MARK, f"{iss} may not issue {mark_type}")
    # `exp` is optional in the spec; this federation requires it (jose.verify checks it), so a
    # mark cannot outlive its certification.
    claims = jose.verify(token, issuer_jwks, TYP, what="trust mark", now=now)
    if claims.get("sub") != subject:
        raise FederationError(TRUST_MARK, "the trust mark is about another entity")
    return claims


def status_response(issuer: str, key: jose.FederationKey, trust_mark: str, status: str) -> str:
    """The signed answer of the trust mark status endpoint (section 8.4.2)."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "iat": now,
        "exp": now + 300,
        "trust_mark": trust_mark,
        "status": status,
    }
    return jose.sign(claims, key, STATUS_TYP)
