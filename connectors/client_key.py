"""The connector's own signing key and its RFC 7523 client assertions (`private_key_jwt`).

The connector authenticates to the IdP's token endpoint by signing a short-lived JWT instead of
sending a shared secret: the private key never leaves the municipality's configuration
(PHR_CONNECTOR_SIGNING_KEY or PHR_CONNECTOR_SIGNING_KEY_FILE), and the IdP holds only the
public JWK, registered with the connector's client (static client `jwks`).

The configured value may be a PEM private key (EC P-256, PKCS#8 or SEC1), a private JWK as
JSON, or any other secret string, from which a P-256 key is derived with HKDF. Development
mode makes such a secret (`dev-…`) in var/secrets on first use; production refuses it like
every other development secret (phr_core/secrets.py), so a real deployment configures its own.
`phr connector jwk` prints the public JWK to register at the IdP.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey

from phr_core.dpop import thumbprint
from phr_core.secrets import derive_key

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALG = "ES256"
LIFETIME = 60  # seconds: long enough for clock skew, short enough to be useless when captured
_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


def load_signing_key(value: str) -> ECKey:
    """The P-256 private key a configured value stands for (PEM, JWK JSON or a secret)."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        try:
            pem = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"the connector's signing key is not a usable PEM ({exc})") from None
        if not isinstance(pem, ec.EllipticCurvePrivateKey) or pem.curve.name != "secp256r1":
            raise ValueError("the connector's signing key must be an EC P-256 key (ES256)")
        return ECKey.import_key(pem)
    if text.startswith("{"):
        try:
            key = ECKey.import_key(json.loads(text))
        except (ValueError, TypeError) as exc:
            raise ValueError(f"the connector's signing key is not a usable JWK ({exc})") from None
        if not key.is_private or key.as_dict().get("crv") != "P-256":
            raise ValueError("the connector's signing key must be a private EC P-256 JWK")
        return key
    # A secret string: a P-256 scalar derived from it (never 0, always below the group order).
    seed = int.from_bytes(derive_key(text, "connectors/client-assertion-key/v1", 48), "big")
    private = ec.derive_private_key(seed % (_P256_ORDER - 1) + 1, ec.SECP256R1())
    return ECKey.import_key(private)


def public_jwk(key: ECKey) -> dict[str, Any]:
    """The public JWK to register at the IdP, with its RFC 7638 thumbprint as `kid`."""
    pub = key.as_dict(private=False)
    pub = {k: pub[k] for k in ("kty", "crv", "x", "y")}
    return {**pub, "kid": thumbprint(pub), "alg": ALG, "use": "sig"}


class ClientAssertion:
    """Signs one fresh assertion per token request: iss = sub = client_id, aud = the token
    endpoint, a random jti (the IdP refuses a replay), exp one minute ahead."""

    def __init__(self, client_id: str, key: ECKey) -> None:
        self.client_id = client_id
        self._key = key
        self.kid = public_jwk(key)["kid"]

    def sign(self, audience: str, *, now: float | None = None, lifetime: int = LIFETIME) -> str:
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "iat": issued,
            "exp": issued + lifetime,
            "jti": secrets.token_urlsafe(24),
        }
        return jwt.encode({"alg": ALG, "typ": "JWT", "kid": self.kid}, claims, self._key)

    def form(self, audience: str) -> dict[str, str]:
        """The token-request fields that authenticate the client (RFC 7523 §2.2)."""
        return {
            "client_assertion_type": JWT_BEARER,
            "client_assertion": self.sign(audience),
        }
