"""DPoP at the resource server (RFC 9449 7): a DPoP-bound access token (`cnf.jkt`) is honoured
only with the `DPoP` scheme and a fresh proof, signed by that key, for this method and URL and
bound to this token (`ath`); each proof once. A bound token sent as `Bearer` is refused, so a
stolen token is worthless without the phone's key."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from datetime import UTC, datetime

from flask import request
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from phr_core import dpop
from phr_core.db import rowcount
from phr_core.tokens import AccessToken
from phr_core.webapp import database, settings
from phr_server.models import DpopJti

ALGS = " ".join(dpop.ALGS)


class ProofRefused(Exception):
    """401 with `WWW-Authenticate: DPoP error="invalid_dpop_proof"` (or invalid_token)."""

    def __init__(self, message: str, error: str = "invalid_dpop_proof") -> None:
        super().__init__(message)
        self.error = error


def purge_expired(s: Session, now: datetime | None = None) -> int:
    """Delete proof ids past their expiry (a replay of one is refused as expired anyway); a
    hundredth of the proofs do it in passing, `phr purge` on a schedule. Returns how many."""
    result = s.execute(delete(DpopJti).where(DpopJti.expires_at < (now or datetime.now(UTC))))
    return rowcount(result)


def _remember(jkt: str) -> Callable[[str, int], bool]:
    def remember(jti: str, exp: int) -> bool:
        key = hashlib.sha256(f"{jkt}|{jti}".encode()).hexdigest()
        expires = datetime.fromtimestamp(exp, UTC)
        try:
            with database().session() as s:
                s.add(DpopJti(jti_hash=key, expires_at=expires))
                if random.random() < 0.01:  # noqa: S311 (housekeeping, not security)
                    purge_expired(s)
        except IntegrityError:
            return False
        return True

    return remember


def check(scheme: str, raw: str, token: AccessToken) -> None:
    """Raise ProofRefused unless the request's scheme and proof fit the token."""
    if token.jkt is None:
        if scheme == "dpop":
            raise ProofRefused(
                "this access token is not DPoP-bound; send it as Bearer", "invalid_token"
            )
        return
    if scheme != "dpop":
        raise ProofRefused(
            "this access token is DPoP-bound; send it with the DPoP scheme", "invalid_token"
        )
    proof = request.headers.get("DPoP", "")
    if not proof or "," in proof:
        raise ProofRefused("exactly one DPoP proof header is required")
    url = settings().urls["fhir"].rstrip("/") + request.path
    try:
        jkt = dpop.verify(
            proof, method=request.method, url=url, remember=_remember(token.jkt), access_token=raw
        )
    except dpop.InvalidProof as exc:
        raise ProofRefused(str(exc)) from None
    if jkt != token.jkt:
        raise ProofRefused("the DPoP proof is signed by another key than the token is bound to")
