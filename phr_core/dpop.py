"""DPoP proofs (RFC 9449): checked the same way at the IdP's token endpoint and at resource
servers. The caller supplies replay protection (`remember`), since only it knows where jti
values can be kept for every worker."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from phr_core.tokens import b64url_json

ALGS = ("ES256", "RS256", "PS256")
IAT_WINDOW_S = 60


class InvalidProof(Exception):
    """The DPoP proof is missing or wrong; the message is safe to return."""


def thumbprint(jwk: dict) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url: the `jkt` tokens are bound to."""
    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}.get(jwk.get("kty", ""))
    if members is None:
        raise InvalidProof("unsupported DPoP key type")
    canonical = json.dumps({k: jwk[k] for k in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def verify(
    proof: str,
    *,
    method: str,
    url: str,
    remember: Callable[[str, int], bool],
    access_token: str | None = None,
    now: float | None = None,
) -> str:
    """Check one proof for one request; returns the key's thumbprint. `remember(jti, exp)`
    must return False when the jti was seen before."""
    try:
        head_b64, body_b64, _ = proof.split(".")
        header, claims = b64url_json(head_b64), b64url_json(body_b64)
    except ValueError:
        raise InvalidProof("malformed DPoP proof") from None
    if header.get("typ") != "dpop+jwt" or header.get("alg") not in ALGS:
        raise InvalidProof("DPoP proof must be typ dpop+jwt with an asymmetric alg")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or any(k in jwk for k in ("d", "p", "q", "dp", "dq", "qi")):
        raise InvalidProof("DPoP proof must carry a public jwk")
    try:
        key = (ECKey if jwk.get("kty") == "EC" else RSAKey).import_key(jwk)
        jws.deserialize_compact(proof, key, algorithms=list(ALGS))
    except (JoseError, ValueError, TypeError):
        raise InvalidProof("DPoP proof signature is invalid") from None
    t = time.time() if now is None else now
    iat = claims.get("iat")
    if not isinstance(iat, int) or abs(iat - t) > IAT_WINDOW_S:
        raise InvalidProof("DPoP proof is too old or from the future")
    if claims.get("htm") != method:
        raise InvalidProof("DPoP proof is for another HTTP method")
    if str(claims.get("htu", "")).split("?")[0].split("#")[0] != url.split("?")[0]:
        raise InvalidProof("DPoP proof is for another URL")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidProof("DPoP proof needs a jti")
    if access_token is not None:
        ath = base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest())
        if claims.get("ath") != ath.rstrip(b"=").decode():
            raise InvalidProof("DPoP proof is not bound to this access token")
    if not remember(jti, iat + IAT_WINDOW_S):
        raise InvalidProof("DPoP proof was already used")
    return thumbprint(jwk)
