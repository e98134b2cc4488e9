"""A protected resource (PHR server) accepting access tokens from any OpenID provider that
chains to the federation's trust anchor, not only from its home IdP.

The issuer's signing keys come from its policy-applied `openid_provider` metadata (`jwks`, or
`jwks_uri` fetched and cached); the chain is re-resolved when it expires, so a provider removed
from the federation stops being accepted then (or at once, for a verifier that is restarted).

Subjects stay unlinkable and cannot be forged across providers: a token from another provider
carries that provider's subject, which is namespaced as `<issuer>#<sub>` before anything looks
it up, so no provider in the federation can mint the subject of a person signed in at another.
The consent service keys such a provider's people the same way (consent.auth), so a grant it
records there is checked like a home grant. Acting for a municipality (a connector's token) is
refused from other providers. The consent API uses this verifier too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

from joserfc.jwk import KeySet

from federation import keys
from federation.entity.fetch import UrlFetcher
from federation.entity.trust_chain import Resolver
from federation.errors import FederationError
from phr_core.config import Settings
from phr_core.tokens import (
    AccessToken,
    AccessTokenVerifier,
    InvalidToken,
    JwksCache,
    UnsealKeys,
    b64url_json,
    unseal,
)

REFUSED_TTL_S = 60.0  # an issuer outside the federation is not asked about again for this long


class _StaticJwks(JwksCache):
    """Keys given inline in the provider's metadata (`jwks`)."""

    def __init__(self, jwks: dict) -> None:
        super().__init__("")
        self._set = KeySet.import_key_set(jwks)

    def keys(self, kid: str | None) -> KeySet:
        return self._set


class FederatedVerifier:
    """`verify(token)` like AccessTokenVerifier: the home issuer's tokens go to `home`; a
    token from another issuer is accepted when that issuer resolves to our trust anchor as an
    OpenID provider and its keys verify the token."""

    def __init__(
        self,
        home: AccessTokenVerifier,
        resolver: Callable[[], Resolver | None],
        decryption_key: UnsealKeys,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.home = home
        self.resolver = resolver
        self.decryption_key = decryption_key
        self.clock = clock
        self._verifiers: dict[str, tuple[AccessTokenVerifier, int]] = {}
        self._refused: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    @property
    def issuer(self) -> str:
        return self.home.issuer

    @property
    def audience(self) -> str:
        return self.home.audience

    @property
    def jwks(self) -> JwksCache:
        return self.home.jwks

    def verify(self, token: str, now: float | None = None) -> AccessToken:
        signed = unseal(token, self.decryption_key)
        try:
            issuer = b64url_json(signed.split(".")[1]).get("iss")
        except (ValueError, IndexError):
            raise InvalidToken("malformed token") from None
        if issuer == self.home.issuer or not isinstance(issuer, str):
            return self.home.verify(signed, now)  # already opened: not decrypted twice
        verifier = self._verifier_for(issuer)
        result = verifier.verify(signed, now)
        if result.municipality is not None:
            # Acting for a city (a connector's writes) is for the home IdP's clients only.
            raise InvalidToken("a token from another issuer cannot act for a municipality")
        return replace(result, subject=f"{issuer}#{result.subject}")

    def _verifier_for(self, issuer: str) -> AccessTokenVerifier:
        now = self.clock()
        with self._lock:
            known = self._verifiers.get(issuer)
            refused = self._refused.get(issuer)
        if known is not None and known[1] > now:
            return known[0]
        if refused is not None and refused[0] > now:
            raise InvalidToken(f"token from an issuer outside the federation ({refused[1]})")
        resolver = self.resolver()
        if resolver is None:
            raise InvalidToken("token from another issuer")
        try:
            chain = resolver.resolve(issuer)
            op = chain.metadata.get("openid_provider")
            if op is None or op.get("issuer") != issuer:
                raise FederationError("entity_type_not_allowed", "not an OpenID provider")
        except FederationError as exc:
            with self._lock:
                self._refused[issuer] = (now + REFUSED_TTL_S, exc.reason)
            raise InvalidToken(
                f"token from an issuer outside the federation ({exc.reason})"
            ) from None
        if isinstance(op.get("jwks"), dict):
            jwks: JwksCache = _StaticJwks(op["jwks"])
        elif isinstance(op.get("jwks_uri"), str):
            jwks = JwksCache(op["jwks_uri"])
        else:
            raise InvalidToken("the issuer publishes no keys")
        verifier = AccessTokenVerifier(issuer, self.home.audience, jwks)
        with self._lock:
            self._verifiers[issuer] = (verifier, chain.exp)
        return verifier


def for_settings(
    settings: Settings, home: AccessTokenVerifier, decryption_key: UnsealKeys
) -> FederatedVerifier:
    """The verifier a PHR server uses: its home IdP, plus the federation's providers when a
    trust anchor is configured (the resolver is made on first need)."""
    made: list[Resolver | None] = []

    def resolver() -> Resolver | None:
        if not made:
            anchors = keys.trust_anchors(settings)
            made.append(
                Resolver(UrlFetcher(allow_http_loopback=not settings.production), anchors)
                if anchors
                else None
            )
        return made[0]

    return FederatedVerifier(home, resolver, decryption_key)
