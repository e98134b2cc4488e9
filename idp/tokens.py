"""Minting what the IdP hands out: ID tokens (the app's own pairwise `sub`), JWT access tokens
(RFC 9068; the resource server's PHR-sector `sub`), and rotating refresh tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from joserfc import jwt
from sqlalchemy import update
from sqlalchemy.orm import Session

from idp.clients import ClientView
from idp.context import ACCESS_TOKEN_TTL, ID_TOKEN_TTL, REFRESH_TOKEN_TTL, IdP
from idp.models import IssuedAccessToken, RefreshToken
from idp.rows import insert_row
from idp.sealing import seal_for
from idp.subjects import PHR_SECTOR
from phr_core.pairwise_ids import CLAIM, encode_key


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_handle(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(ctx: IdP, claims: dict[str, Any], *, typ: str = "JWT", alg: str = "ES256") -> str:
    key = ctx.keys.signing_key(alg)
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": typ}, claims, key.key)


def id_token(
    ctx: IdP,
    s: Session,
    client: ClientView,
    person_id: str,
    *,
    auth_time: datetime,
    acr: str,
    amr: list[str],
    nonce: str | None = None,
    sid: str | None = None,
    access_token: str | None = None,
) -> str:
    now = now_utc()
    claims: dict[str, Any] = {
        "iss": ctx.issuer,
        "sub": ctx.subjects.subject(s, client.sector, person_id),
        "aud": client.client_id,
        "iat": int(now.timestamp()),
        "exp": int((now + ID_TOKEN_TTL).timestamp()),
        "auth_time": int(auth_time.timestamp()),
        "acr": acr,
        "amr": amr,
    }
    if nonce:
        claims["nonce"] = nonce
    if sid:
        claims["sid"] = sid
    if access_token:
        digest = hashlib.sha256(access_token.encode()).digest()
        claims["at_hash"] = _b64(digest[: len(digest) // 2])
    return sign(ctx, claims, alg=client.id_token_alg)


def access_token(
    ctx: IdP,
    s: Session,
    client: ClientView,
    *,
    audience: str,
    scope: str,
    person_id: str | None,
    grant_id: str | None = None,
    family_id: str | None = None,
    jkt: str | None = None,
    acr: str | None = None,
    patient: str | None = None,
    first_party: bool = False,
    sector_key: bytes | None = None,
) -> tuple[str, int]:
    """A JWT access token for `audience`; returns (token, expires_in seconds).

    For a resource server the subject is the PHR sector's, so the PHR server knows the person
    whichever app calls; the token is then sealed (JWE) so that the app cannot read it. A token
    only for our own userinfo carries the app's own subject and stays a plain signed JWT.
    `first_party` (the platform's portal, no grant) adds the claim `phr_first_party`: only the
    IdP's signature vouches for it, so no client can add it to a token of its own.
    `sector_key` (an app's token under a consent grant): the key of the app's sector for
    pairwise logical ids, claim `phr_sector_key`, only in sealed tokens for a resource server
    (phr_core.pairwise_ids); the real launch `patient` stays in the claim of that name."""
    now = now_utc()
    exp = now + ACCESS_TOKEN_TTL
    jti = new_handle(16)
    for_resource_server = audience != ctx.issuer
    if person_id is None:
        sub = client.client_id
    elif for_resource_server:
        sub = ctx.subjects.subject(s, PHR_SECTOR, person_id)
    else:
        sub = ctx.subjects.subject(s, client.sector, person_id)
    claims: dict[str, Any] = {
        "iss": ctx.issuer,
        "sub": sub,
        "aud": audience,
        "client_id": client.client_id,
        "scope": scope,
        "iat": int(now.timestamp()),
        "exp": int(exp.timestamp()),
        "jti": jti,
    }
    if grant_id:
        claims["grant_id"] = grant_id
    if acr:
        claims["acr"] = acr
    if patient:
        claims["patient"] = patient  # the resource server narrows `patient/` scopes to it
    if sector_key and grant_id and for_resource_server:
        claims[CLAIM] = encode_key(sector_key)
    if first_party and person_id and for_resource_server and not grant_id:
        claims["phr_first_party"] = True
    if client.municipality and not person_id:
        claims["municipality"] = client.municipality
    if jkt:
        claims["cnf"] = {"jkt": jkt}
    token = sign(ctx, claims, typ="at+jwt")
    if for_resource_server:
        token = seal_for(ctx, audience, token)
    insert_row(
        s, IssuedAccessToken, jti=jti, family_id=family_id, client_id=client.client_id,
        person_id=person_id, scope=scope, expires_at=exp,
    )  # fmt: skip
    return token, int(ACCESS_TOKEN_TTL.total_seconds())


def refresh_token(
    s: Session,
    client: ClientView,
    *,
    family_id: str,
    person_id: str,
    scope: str,
    grant_id: str | None,
    sid: str | None,
    auth_time: datetime,
    acr: str,
    amr: list[str],
    jkt: str | None,
) -> str:
    token = new_handle(32)
    insert_row(
        s, RefreshToken, token_hash=sha256_hex(token), family_id=family_id,
        client_id=client.client_id, person_id=person_id, scope=scope, grant_id=grant_id, sid=sid,
        auth_time=auth_time, acr=acr, amr=amr, dpop_jkt=jkt,
        expires_at=now_utc() + REFRESH_TOKEN_TTL,
    )  # fmt: skip
    return token


def revoke_family(s: Session, family_id: str) -> None:
    """Revoke every refresh and access token descended from one authorization."""
    now = now_utc()
    s.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    s.execute(
        update(IssuedAccessToken)
        .where(IssuedAccessToken.family_id == family_id, IssuedAccessToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def aware(dt: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored in UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
