"""The authority's federation endpoints (OpenID Federation 1.0 section 8): its entity
configuration, fetch, list, resolve, and the trust mark and trust mark status endpoints.
Errors are the spec's JSON shape (`error`, `error_description`, section 8.9)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session

from federation import jose, keys, trust_marks
from federation.authority import store
from federation.authority.policies import (
    CONFIGURATION_LIFETIME_S,
    INTERMEDIATE_CONSTRAINTS,
    LEAF_POLICY,
    STATEMENT_LIFETIME_S,
)
from federation.entity import statement
from federation.entity.fetch import UrlFetcher
from federation.entity.trust_chain import Resolver
from federation.errors import FederationError
from federation.models import IssuedTrustMark
from phr_core.webapp import database, settings

bp = Blueprint("federation_authority", __name__)

RESOLVE_TYP = "resolve-response+jwt"
MARK_LIFETIME_S = 365 * 24 * 3600


def entity_id() -> str:
    return settings().urls["federation"]


def _key() -> jose.FederationKey:
    return keys.entity_key(settings(), "federation")


def is_anchor() -> bool:
    return not keys.authority_hints(settings(), "federation")


def error(code: str, description: str, status: int) -> Response:
    resp = jsonify(error=code, error_description=description)
    resp.status_code = status
    return resp


def jwt_response(token: str, media_type: str) -> Response:
    resp = Response(token, mimetype=media_type)
    resp.headers["Cache-Control"] = "no-store"
    return resp


def federation_entity_metadata() -> dict[str, Any]:
    base = entity_id()
    return {
        "federation_fetch_endpoint": base + "/fetch",
        "federation_list_endpoint": base + "/list",
        "federation_resolve_endpoint": base + "/resolve",
        "federation_trust_mark_status_endpoint": base + "/trust_mark_status",
        "federation_trust_mark_endpoint": base + "/trust_mark",
        "organization_name": "PHR federation (development)"
        if not settings().production
        else "PHR federation",
    }


@bp.get(statement.WELL_KNOWN)
def configuration() -> ResponseReturnValue:
    extra: dict[str, Any] = {}
    if is_anchor():
        # This anchor issues the "certified PHR app" mark itself.
        extra["trust_mark_issuers"] = {trust_marks.CERTIFIED_PHR_APP: [entity_id()]}
    token = statement.sign_configuration(
        entity_id(),
        _key(),
        {"federation_entity": federation_entity_metadata()},
        published=keys.entity_keys(settings(), "federation"),
        authority_hints=keys.authority_hints(settings(), "federation"),
        lifetime_s=CONFIGURATION_LIFETIME_S,
        **extra,
    )
    return jwt_response(token, statement.MEDIA_TYPE)


@bp.get("/fetch")
def fetch() -> ResponseReturnValue:
    sub = request.args.get("sub", "")
    if not sub:
        return error("invalid_request", "sub is required", 400)
    if sub == entity_id():
        return error("invalid_request", "use /.well-known/openid-federation for this entity", 400)
    with database().session() as s:
        row = store.active(s, sub)
        if row is None:
            return error("not_found", "this authority does not vouch for that entity", 404)
        constraints = row.constraints
        if constraints is None and row.intermediate:
            constraints = INTERMEDIATE_CONSTRAINTS
        token = statement.sign_subordinate(
            entity_id(),
            _key(),
            row.entity_id,
            row.jwks,
            metadata_policy=row.metadata_policy if row.metadata_policy is not None else LEAF_POLICY,
            constraints=constraints,
            lifetime_s=STATEMENT_LIFETIME_S,
            source_endpoint=entity_id() + "/fetch",
        )
    return jwt_response(token, statement.MEDIA_TYPE)


@bp.get("/list")
def listing() -> ResponseReturnValue:
    raw = request.args.get("intermediate")
    intermediate = None if raw is None else raw.lower() == "true"
    with database().session() as s:
        ids = store.listing(
            s, entity_type=request.args.get("entity_type"), intermediate=intermediate
        )
    return jsonify(ids)


def resolver() -> Resolver:
    """The resolver the resolve endpoint uses (tests put one with an in-process fetcher)."""
    existing = current_app.extensions.get("federation_resolver")
    if existing is None:
        existing = Resolver(
            UrlFetcher.for_settings(settings()),
            keys.trust_anchors(settings()),
        )
        current_app.extensions["federation_resolver"] = existing
    return existing


@bp.get("/resolve")
def resolve() -> ResponseReturnValue:
    """Section 8.3: the subject's metadata after policies, and the chain that proves it."""
    sub, anchor = request.args.get("sub", ""), request.args.get("trust_anchor", "")
    if not sub or not anchor:
        return error("invalid_request", "sub and trust_anchor are required", 400)
    r = resolver()
    if anchor not in r.trust_anchors:
        return error("invalid_trust_anchor", "this resolver does not know that trust anchor", 404)
    try:
        chain = r.resolve(sub)
    except FederationError as exc:
        return error(exc.protocol_error, exc.detail, 404 if exc.reason == "not_found" else 400)
    if chain.trust_anchor != anchor:
        return error("invalid_trust_chain", "no chain to that trust anchor", 404)
    metadata = chain.metadata.raw
    types = request.args.getlist("entity_type")
    if types:
        metadata = {t: m for t, m in metadata.items() if t in types}
    now = int(time.time())
    claims = {
        "iss": entity_id(),
        "sub": sub,
        "iat": now,
        "exp": chain.exp,
        "metadata": metadata,
        "trust_chain": chain.jwts,
    }
    if chain.trust_mark_entries:
        claims["trust_marks"] = chain.trust_mark_entries
    return jwt_response(jose.sign(claims, _key(), RESOLVE_TYP), "application/resolve-response+jwt")


@bp.get("/trust_mark")
def trust_mark() -> ResponseReturnValue:
    """Section 8.6: a fresh trust mark for an entity this authority has certified."""
    mark_type = request.args.get("trust_mark_type", "")
    sub = request.args.get("sub", "")
    if not mark_type or not sub:
        return error("invalid_request", "trust_mark_type and sub are required", 400)
    with database().session() as s:
        rows = [
            r
            for r in _marks_of(s, sub, mark_type)
            if r.revoked_at is None and _aware(r.expires_at).timestamp() > time.time()
        ]
        if not rows:
            return error("not_found", "no active trust mark of that type for that entity", 404)
        row = rows[-1]
        token = _sign_mark(row)
    return jwt_response(token, "application/trust-mark+jwt")


@bp.post("/trust_mark_status")
def trust_mark_status() -> ResponseReturnValue:
    """Section 8.4: whether a mark this authority issued is active, expired or revoked."""
    token = request.form.get("trust_mark", "")
    if not token:
        return error("invalid_request", "trust_mark is required", 400)
    try:
        # The signature decides whether it is ours; expiry is a status, not an error here.
        _, peeked = jose.peek(token)
        iat = peeked.get("iat") if isinstance(peeked.get("iat"), int) else 0
        claims = jose.verify(
            token,
            keys.published_jwks(settings(), "federation"),  # marks made before a rotation too
            trust_marks.TYP,
            what="trust mark",
            now=iat,
        )
    except FederationError:
        return error("not_found", "not a trust mark this authority issued", 404)
    with database().session() as s:
        row = store.find_mark(s, claims["sub"], claims["trust_mark_type"], claims["iat"])
        if row is None:
            status = "invalid"
        elif row.revoked_at is not None:
            status = "revoked"
        elif claims["exp"] <= time.time():
            status = "expired"
        else:
            status = "active"
    return jwt_response(
        trust_marks.status_response(entity_id(), _key(), token, status),
        "application/trust-mark-status-response+jwt",
    )


def _marks_of(s: Session, sub: str, mark_type: str) -> list[IssuedTrustMark]:
    return list(
        s.scalars(
            select(IssuedTrustMark)
            .where(IssuedTrustMark.sub == sub, IssuedTrustMark.trust_mark_type == mark_type)
            .order_by(IssuedTrustMark.issued_at)
        ).all()
    )


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _sign_mark(row: IssuedTrustMark) -> str:
    issued = int(_aware(row.issued_at).timestamp())
    lifetime = int(_aware(row.expires_at).timestamp()) - issued
    return trust_marks.issue(
        entity_id(), _key(), row.sub, row.trust_mark_type, lifetime_s=lifetime, now=issued
    )
