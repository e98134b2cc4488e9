"""Federation keys and signed federation JWTs (entity statements, trust marks, resolve
responses), on joserfc.

A federation key is configured like every other secret: either a private JWK (JSON, for keys
made elsewhere) or a long random string from which a P-256 key is derived (HKDF), so the
development keys in var/secrets and production refusal of `dev-` values work unchanged.
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey, KeySet, KeySetSerialization, RSAKey

from federation.errors import BAD_SIGNATURE, EXPIRED, MALFORMED, NOT_YET_VALID, FederationError
from phr_core.secrets import derive_key

ALGS = ("ES256", "RS256", "PS256")
# Tolerated clock difference between federation entities.
LEEWAY_S = 60
_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)

FederationKey = ECKey | RSAKey


def federation_key(secret: str) -> FederationKey:
    """The signing key for a configured secret: a private JWK as JSON, else derived from it."""
    if secret.lstrip().startswith("{"):
        data = json.loads(secret)
        key = ECKey.import_key(data) if data.get("kty") == "EC" else RSAKey.import_key(data)
        if not key.is_private:
            raise ValueError("a federation key must be a private JWK")
    else:
        material = int.from_bytes(derive_key(secret, "federation/entity-key/v1", 48), "big")
        scalar = material % (_P256_ORDER - 1) + 1
        key = ECKey.import_key(ec.derive_private_key(scalar, ec.SECP256R1()))
    key.ensure_kid()
    return key


def alg_of(key: FederationKey) -> str:
    return "ES256" if isinstance(key, ECKey) else "RS256"


def public_jwk(key: FederationKey) -> dict[str, Any]:
    out: dict[str, Any] = dict(key.as_dict(private=False))
    out.update(kid=key.kid, alg=alg_of(key), use="sig")
    return out


def public_jwks(*keys: FederationKey) -> dict[str, Any]:
    """A JWK Set of the public halves, as published in `jwks` claims."""
    return {"keys": [public_jwk(k) for k in keys]}


def sign(claims: dict[str, Any], key: FederationKey, typ: str) -> str:
    """A compact JWS with the explicit `typ` the spec gives each federation JWT."""
    header = {"alg": alg_of(key), "kid": key.kid, "typ": typ}
    return jwt.encode(header, claims, key)


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims without checking the signature (to learn who signed it)."""
    try:
        obj = jws.extract_compact(token.encode("ascii"))
        claims = json.loads(obj.payload)
    except (JoseError, ValueError, UnicodeError) as exc:
        raise FederationError(MALFORMED, f"not a compact JWS ({type(exc).__name__})") from None
    if not isinstance(claims, dict):
        raise FederationError(MALFORMED, "the payload is not a JSON object")
    return dict(obj.headers()), claims


def verify(
    token: str, jwks: dict[str, Any], typ: str, *, what: str, now: float | None = None
) -> dict[str, Any]:
    """The claims of `token` after checking its `typ`, its signature against `jwks` (the `kid`
    must be there) and its `iat`/`exp`. `what` names the statement in error messages."""
    header, _ = peek(token)
    if header.get("typ") != typ:
        raise FederationError(MALFORMED, f"{what}: typ must be {typ}, not {header.get('typ')!r}")
    if header.get("alg") not in ALGS:
        raise FederationError(MALFORMED, f"{what}: alg {header.get('alg')!r} is not accepted")
    try:
        keys = KeySet.import_key_set(cast(KeySetSerialization, jwks))
    except (JoseError, ValueError, TypeError, KeyError):
        raise FederationError(MALFORMED, f"{what}: the verifying jwks is not a JWK Set") from None
    kid = header.get("kid")
    if not kid or all(k.kid != kid for k in keys.keys):
        raise FederationError(BAD_SIGNATURE, f"{what}: signed with key {kid!r}, not a trusted one")
    try:
        claims = jwt.decode(token, keys, algorithms=list(ALGS)).claims
    except BadSignatureError:
        raise FederationError(BAD_SIGNATURE, f"{what}: the signature does not verify") from None
    except (JoseError, ValueError) as exc:
        raise FederationError(MALFORMED, f"{what}: {type(exc).__name__}") from None
    check_times(claims, what=what, now=now)
    return claims


def check_times(claims: dict[str, Any], *, what: str, now: float | None = None) -> None:
    """`iat` and `exp` are required integers; the statement must be valid now (with leeway)."""
    now = time.time() if now is None else now
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):
        raise FederationError(MALFORMED, f"{what}: iat and exp must be integers")
    if iat > now + LEEWAY_S:
        raise FederationError(NOT_YET_VALID, f"{what}: issued in the future")
    if exp <= now - LEEWAY_S:
        raise FederationError(EXPIRED, f"{what}: expired")
