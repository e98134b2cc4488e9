"""The consent service's receipt signing keys (PHR_CONSENT_RECEIPT_KEY), kept in the kernel
because two packages publish them: the consent service at its JWKS URL and the federation
entity configuration that vouches for the same keys.

Rotation-ready: the secret holds several keys, newest first. The newest signs; every one stays
published, so a receipt signed years ago still verifies. Two forms, like the other key secrets:

* whitespace-separated random strings, newest first, each deriving a P-256 key (HKDF), so
  development keys in var/secrets and production's refusal of `dev-` values work unchanged;
* JSON: one private EC P-256 JWK, or a JWK Set whose first key is private (it signs) and whose
  others may be public halves only (retired keys whose private part was destroyed).

Each key's `kid` is its RFC 7638 thumbprint, so it never changes with the form it is kept in.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from phr_core.config import ConfigError, Settings
from phr_core.secrets import derive_key

KEY_VARIABLE = "PHR_CONSENT_RECEIPT_KEY"
ALG = "ES256"
JWKS_PATH = "/receipts/jwks.json"  # under PHR_CONSENT_URL
_PURPOSE = "consent/receipt-signing-key/v1"
_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


def _derived(secret: str) -> ECKey:
    scalar = int.from_bytes(derive_key(secret, _PURPOSE, 48), "big") % (_P256_ORDER - 1) + 1
    return ECKey.import_key(ec.derive_private_key(scalar, ec.SECP256R1()))


def _imported(jwk: object) -> ECKey:
    if not isinstance(jwk, dict) or jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise ValueError("every receipt key must be an EC P-256 JWK")
    return ECKey.import_key(jwk)


@functools.lru_cache(maxsize=8)
def parse(secret: str) -> tuple[ECKey, ...]:
    """The keys a secret holds, newest (the signing one) first. Raises ValueError."""
    text = secret.strip()
    if text.startswith("{"):
        data = json.loads(text)
        found = [_imported(k) for k in data["keys"]] if "keys" in data else [_imported(data)]
    else:
        found = [_derived(part) for part in text.split()]
    if not found:
        raise ValueError("no key")
    if not found[0].is_private:
        raise ValueError("the first (signing) key must be a private JWK")
    for key in found:
        key.ensure_kid()
    return tuple(found)


def keys(settings: Settings) -> tuple[ECKey, ...]:
    """Every receipt key of this consent service, the signing one first."""
    try:
        return parse(settings.secret(KEY_VARIABLE))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{KEY_VARIABLE} is not a usable key: {exc}") from None


def signing_key(settings: Settings) -> ECKey:
    return keys(settings)[0]


def public_jwk(key: ECKey) -> dict[str, Any]:
    out: dict[str, Any] = dict(key.as_dict(private=False))
    out.update(kid=key.kid, alg=ALG, use="sig")
    return out


def published_jwks(settings: Settings) -> dict[str, Any]:
    """The JWK Set anyone verifies receipts with (served at JWKS_PATH)."""
    return {"keys": [public_jwk(k) for k in keys(settings)]}


def jwks_url(settings: Settings) -> str:
    return settings.urls["consent"] + JWKS_PATH
