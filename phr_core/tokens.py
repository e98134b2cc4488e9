"""Verifying the platform's access tokens (JWT, RFC 9068) at a resource server: the PHR server
and the consent service's API. One verifier, so every service checks the same things.

Contract of an access token issued by the IdP:
  header  typ "at+jwt", alg ES256 or RS256, kid
  claims  iss = the IdP's issuer, aud = the resource server's base URL, exp, iat, jti,
          sub = the pairwise subject of the PHR sector (user tokens) or the client_id
          (client-credentials tokens), client_id, scope (space separated),
          grant_id (the consent grant; user tokens only), municipality (connector tokens),
          cnf.jkt (DPoP-bound tokens, RFC 9449), phr_first_party (true: the platform's own
          portal reading for the person, no grant; the IdP sets it only for its static
          PHR-sector client marked `phr_first_party`, see idp.clients)
  Tokens for a resource server arrive sealed, holding the signed JWT: a JWE (ECDH-ES+A256KW,
  A256GCM) to the resource server's own key when it publishes one (phr_core.sealing), else
  (alg dir, enc A256GCM) under a key derived from the shared PHR_ACCESS_TOKEN_KEY;
  `AccessTokenVerifier(decryption_key=sealing.OpeningKeys(settings, prefix, shared))` opens
  both, with every key the server still holds during a rotation of its own.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwe, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OctKey

from phr_core import outbound
from phr_core.outbound import Outbound
from phr_core.secrets import derive_key

ALLOWED_ALGS = ("ES256", "RS256")
LEEWAY_S = 30


def access_token_ciphers(secret: str) -> tuple[OctKey, ...]:
    """The JWE keys (alg dir, enc A256GCM) from PHR_ACCESS_TOKEN_KEY: secrets separated by
    spaces, newest (the one the IdP seals with) first; the older ones still open tokens
    sealed before a rotation (`phr idp rotate-access-token-key`)."""
    return tuple(
        OctKey.import_key(derive_key(part, "phr/access-token-jwe/v1")) for part in secret.split()
    )


def access_token_cipher(secret: str) -> OctKey:
    """The newest JWE key from PHR_ACCESS_TOKEN_KEY (the one the IdP seals with)."""
    return access_token_ciphers(secret)[0]


def seal(signed: str, key: OctKey) -> str:
    """Wrap a signed access token so that only the IdP and resource servers can read it: an app
    must not see the PHR-sector subject inside (RFC 9068 6, OIDC Core 17.3)."""
    header = {"alg": "dir", "enc": "A256GCM", "cty": "JWT", "typ": "at+jwt"}
    return jwe.encrypt_compact(header, signed.encode(), key)


UnsealKeys = (
    OctKey | ECKey | tuple[OctKey | ECKey, ...] | Callable[[], tuple[OctKey | ECKey, ...]] | None
)
SEALING_ALGS = ["dir", "ECDH-ES+A256KW", "A256GCM"]


def unseal(token: str, key: UnsealKeys) -> str:
    """The signed token inside a sealed one (a plain JWS is returned as it is). `key` may be
    the shared key (alg dir), the resource server's own decryption keys (ECDH-ES+A256KW,
    phr_core.sealing), both, or a callable giving them as they are now (a rotation reaches a
    running server): the token's header says which one it needs, its `kid` which own key."""
    if token.count(".") != 4:
        return token
    given = key() if callable(key) else key
    keys = [k for k in (given if isinstance(given, tuple) else (given,)) if k is not None]
    if not keys:
        raise InvalidToken("encrypted token, but no decryption key is configured")
    try:
        header = b64url_json(token.split(".")[0])
    except ValueError:
        raise InvalidToken("malformed token") from None
    alg, kid = header.get("alg"), header.get("kid")
    fitting = [k for k in keys if isinstance(k, OctKey) == (alg == "dir")]
    if not fitting:
        raise InvalidToken("the token is sealed for a key this server does not hold")
    named = [k for k in fitting if kid is not None and not isinstance(k, OctKey) and k.kid == kid]
    for chosen in named or fitting:
        try:
            plaintext = jwe.decrypt_compact(token, chosen, algorithms=SEALING_ALGS).plaintext
            return (plaintext or b"").decode()
        except (JoseError, ValueError, UnicodeDecodeError):
            continue
    raise InvalidToken("the token cannot be decrypted")


class InvalidToken(Exception):
    """The token cannot be accepted; the message is safe to return (RFC 6750 error_description)."""


@dataclass(frozen=True)
class AccessToken:
    subject: str
    client_id: str
    scopes: frozenset[str]
    expires_at: int
    grant_id: str | None = None
    municipality: str | None = None
    jkt: str | None = None  # DPoP key thumbprint the token is bound to
    first_party: bool = False  # the platform's portal, reading for the signed-in person
    claims: dict[str, Any] = field(default_factory=dict, repr=False)


class JwksCache:
    """The IdP's JWKS, fetched on first use, kept for `ttl` seconds, and fetched again at once
    (at most every `min_refetch` seconds) when a token names a key id we do not know yet: that
    is how a rotated-in key is picked up without waiting.

    One thread fetches at a time; while it does, the others go on with the keys already held
    (only the very first fetch is waited for), so a flood of tokens naming unknown key ids
    costs one bounded fetch (phr_core.outbound) every `min_refetch` seconds and slows no one."""

    def __init__(
        self,
        jwks_url: str,
        ttl: float = 300.0,
        min_refetch: float = 5.0,
        *,
        outbound: Outbound | None = None,
    ) -> None:
        self.jwks_url = jwks_url
        self.ttl = ttl
        self.min_refetch = min_refetch
        self.outbound = outbound
        self._keys: KeySet | None = None
        self._fetched = 0.0
        self._attempted = float("-inf")
        self._lock = threading.Lock()

    def _fetch(self) -> KeySet:
        resp = (self.outbound or outbound.default()).get(
            self.jwks_url, accept="application/jwk-set+json, application/json"
        )
        if resp.status != 200:
            raise ValueError(f"JWKS answered HTTP {resp.status}")
        return KeySet.import_key_set(json.loads(resp.body))

    def _due(self, kid: str | None, now: float) -> bool:
        if self._keys is None or now - self._fetched > self.ttl:
            return True
        return (
            kid is not None
            and not any(k.kid == kid for k in self._keys.keys)
            and now - max(self._fetched, self._attempted) > self.min_refetch
        )

    def keys(self, kid: str | None) -> KeySet:
        held = self._keys
        if not self._due(kid, time.monotonic()):
            return held  # type: ignore[return-value]  # not due: keys are held
        if not self._lock.acquire(blocking=held is None):
            return held  # type: ignore[return-value]  # held: only then is the lock optional
        try:
            now = time.monotonic()
            if self._due(kid, now):
                self._attempted = now
                try:
                    self._keys = self._fetch()
                    self._fetched = now
                except (OSError, ValueError, JoseError, KeyError, TypeError) as exc:
                    if self._keys is None:
                        raise InvalidToken("the issuer's keys cannot be fetched") from exc
            if self._keys is None:
                raise InvalidToken("the issuer's keys cannot be fetched")
            return self._keys
        finally:
            self._lock.release()


class AccessTokenVerifier:
    """Checks signature, type, issuer, audience and lifetime of an RFC 9068 access token."""

    def __init__(
        self, issuer: str, audience: str, jwks: JwksCache, decryption_key: UnsealKeys = None
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.jwks = jwks
        self.decryption_key = decryption_key

    def verify(self, token: str, now: float | None = None) -> AccessToken:
        token = unseal(token, self.decryption_key)
        try:
            header = b64url_json(token.split(".")[0])
        except ValueError:
            raise InvalidToken("malformed token") from None
        if header.get("alg") not in ALLOWED_ALGS:
            raise InvalidToken("unsupported token algorithm")
        if header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
            raise InvalidToken("not an access token")
        keys = self.jwks.keys(header.get("kid"))
        try:
            decoded = jwt.decode(token, keys, algorithms=list(ALLOWED_ALGS))
        except (JoseError, ValueError):
            raise InvalidToken("bad token signature") from None
        c = decoded.claims
        t = time.time() if now is None else now
        if c.get("iss") != self.issuer:
            raise InvalidToken("token from another issuer")
        aud = c.get("aud")
        if self.audience not in (aud if isinstance(aud, list) else [aud]):
            raise InvalidToken("token for another audience")
        if not isinstance(c.get("exp"), int) or c["exp"] + LEEWAY_S < t:
            raise InvalidToken("token expired")
        if isinstance(c.get("nbf"), int) and c["nbf"] - LEEWAY_S > t:
            raise InvalidToken("token not yet valid")
        if not c.get("sub") or not c.get("client_id"):
            raise InvalidToken("token lacks sub or client_id")
        return AccessToken(
            subject=c["sub"],
            client_id=c["client_id"],
            scopes=frozenset(str(c.get("scope", "")).split()),
            expires_at=c["exp"],
            grant_id=c.get("grant_id"),
            municipality=c.get("municipality"),
            jkt=(c.get("cnf") or {}).get("jkt"),
            first_party=c.get("phr_first_party") is True,
            claims=dict(c),
        )


def b64url_json(part: str) -> dict:
    """One unverified JOSE segment as a JSON object (ValueError if it is anything else): only
    to read a header, or whose key should verify the signature."""
    data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data
