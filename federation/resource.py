"""A protected resource (PHR server) accepting access tokens from any OpenID provider that
chains to the federation's trust anchor, not only from its home IdP.

Which issuers count is decided before any of their tokens arrive (federation.issuers): the
anchors' listing of OpenID providers, each chain resolved, refreshed in the background. A
token's unverified `iss` is only looked up in that list, so no token can make this server
fetch anything, and a made-up issuer costs a dictionary lookup. A provider removed from the
federation stops being accepted at the next listing (at most five minutes) or when its chain
expires. The issuer's signing keys come from its policy-applied `openid_provider` metadata
(`jwks`, or `jwks_uri` fetched within phr_core.outbound's bounds and cached).

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
from typing import Any, cast

from joserfc.jwk import KeySet, KeySetSerialization

from federation import keys
from federation.entity.fetch import UrlFetcher
from federation.entity.trust_chain import Resolver
from federation.issuers import ListedIssuers
from phr_core import outbound
from phr_core.config import Settings
from phr_core.outbound import Outbound
from phr_core.tokens import (
    AccessToken,
    AccessTokenVerifier,
    InvalidToken,
    JwksCache,
    UnsealKeys,
    b64url_json,
    unseal,
)


class _StaticJwks(JwksCache):
    """Keys given inline in the provider's metadata (`jwks`)."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        super().__init__("")
        self._set = KeySet.import_key_set(cast(KeySetSerialization, jwks))

    def keys(self, kid: str | None) -> KeySet:
        return self._set


class FederatedVerifier:
    """`verify(token)` like AccessTokenVerifier: the home issuer's tokens go to `home`; a
    token from another issuer is accepted when the federation lists that issuer as an OpenID
    provider (federation.issuers: listed and resolved in the background, never fetched
    because a token named it) and its keys verify the token."""

    def __init__(
        self,
        home: AccessTokenVerifier,
        resolver: Callable[[], Resolver | None],
        decryption_key: UnsealKeys,
        *,
        clock: Callable[[], float] = time.time,
        outbound: Outbound | None = None,
    ) -> None:
        self.home = home
        self.resolver = resolver
        self.decryption_key = decryption_key
        self.clock = clock
        self.outbound = outbound
        self._verifiers: dict[str, tuple[AccessTokenVerifier, dict]] = {}
        self._listed: ListedIssuers | None = None
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
        """The verifier of a provider the federation lists. The unverified `iss` is only a
        key into that list: an issuer not on it is refused without any request anywhere."""
        issuers = self._issuers()
        if issuers is None:
            raise InvalidToken("token from another issuer")
        provider = issuers.provider(issuer)
        if provider is None:
            raise InvalidToken("token from an issuer outside the federation (not listed)")
        with self._lock:
            known = self._verifiers.get(issuer)
        if known is not None and known[1] is provider.metadata:
            return known[0]
        op = provider.metadata
        if isinstance(op.get("jwks"), dict):
            jwks: JwksCache = _StaticJwks(op["jwks"])
        elif isinstance(op.get("jwks_uri"), str):
            # Named by metadata the federation vouches for, fetched within outbound's bounds.
            jwks = JwksCache(op["jwks_uri"], outbound=self.outbound)
        else:
            raise InvalidToken("the issuer publishes no keys")
        verifier = AccessTokenVerifier(issuer, self.home.audience, jwks)
        with self._lock:
            self._verifiers[issuer] = (verifier, op)
        return verifier

    def _issuers(self) -> ListedIssuers | None:
        with self._lock:
            if self._listed is None:
                resolver = self.resolver()
                if resolver is None:
                    return None
                self._listed = ListedIssuers(resolver, clock=self.clock)
            return self._listed


def for_settings(
    settings: Settings, home: AccessTokenVerifier, decryption_key: UnsealKeys
) -> FederatedVerifier:
    """The verifier a PHR server uses: its home IdP, plus the federation's providers when a
    trust anchor is configured (the resolver is made on first need)."""
    made: list[Resolver | None] = []

    def resolver() -> Resolver | None:
        if not made:
            anchors = keys.trust_anchors(settings)
            made.append(Resolver(UrlFetcher.for_settings(settings), anchors) if anchors else None)
        return made[0]

    return FederatedVerifier(
        home, resolver, decryption_key, outbound=outbound.for_settings(settings)
    )
