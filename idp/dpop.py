"""DPoP (RFC 9449) at the IdP: proofs at the token endpoint and userinfo, jti replay kept in
the database so every worker sees it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from flask import request
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from idp.context import IdP
from idp.errors import OAuthError
from idp.models import DpopJti
from idp.tokens import now_utc, sha256_hex
from phr_core import dpop


def _remember(ctx: IdP) -> Callable[[str, int], bool]:
    def remember(jti: str, exp: int) -> bool:
        try:
            with ctx.db.session() as s:
                s.add(
                    DpopJti(jti_hash=sha256_hex(jti), expires_at=datetime.fromtimestamp(exp, UTC))
                )
        except IntegrityError:
            return False
        return True

    return remember


def proof_jkt(ctx: IdP, url: str, access_token: str | None = None) -> str | None:
    """The thumbprint of this request's DPoP proof, None without one; bad proofs raise."""
    proofs = request.headers.getlist("DPoP")
    if not proofs:
        return None
    if len(proofs) > 1:
        raise OAuthError("invalid_dpop_proof", "send exactly one DPoP proof")
    try:
        return dpop.verify(
            proofs[0],
            method=request.method,
            url=url,
            remember=_remember(ctx),
            access_token=access_token,
        )
    except dpop.InvalidProof as exc:
        raise OAuthError("invalid_dpop_proof", str(exc)) from None


def purge_expired(ctx: IdP) -> None:
    with ctx.db.session() as s:
        s.execute(delete(DpopJti).where(DpopJti.expires_at < now_utc()))
