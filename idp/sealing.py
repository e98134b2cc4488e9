"""Sealing access tokens for the resource server they are meant for.

A resource server in the federation publishes its own encryption key (`use: enc`) in the
`oauth_resource` metadata of its entity configuration; the IdP resolves the server's trust chain
(the audience is its entity id, as for all of the platform's services) and seals the token to
that key (phr_core.sealing), so no secret is shared and a token for server B cannot be opened by
server A. A server that publishes no key, or that the federation does not vouch for (a
single-city installation without a trust anchor, an older PHR server), gets the token under the
shared PHR_ACCESS_TOKEN_KEY as before: that fallback keeps existing deployments working.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from joserfc.jwk import OctKey

from federation.entity.trust_chain import TrustChain
from federation.errors import FederationError
from phr_core import sealing
from phr_core.tokens import InvalidToken, seal, unseal

log = logging.getLogger(__name__)

KNOWN_TTL_S = 300.0  # look a server's key up again at least this often (or when its chain ends)
UNKNOWN_TTL_S = 60.0  # a server without a key (or unreachable) is asked about again after this


class RecipientKeys:
    """audience URL → the public JWK to seal to, or None (use the shared key); cached."""

    def __init__(
        self,
        resolve: Callable[[str], TrustChain],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.resolve = resolve
        self.clock = clock
        self._known: dict[str, tuple[dict[str, Any] | None, float]] = {}
        self._lock = threading.Lock()

    def key_for(self, audience: str) -> dict[str, Any] | None:
        now = self.clock()
        with self._lock:
            hit = self._known.get(audience)
        if hit is not None and hit[1] > now:
            return hit[0]
        jwk, until = self._look_up(audience, now)
        with self._lock:
            self._known[audience] = (jwk, until)
        return jwk

    def _look_up(self, audience: str, now: float) -> tuple[dict[str, Any] | None, float]:
        try:
            chain = self.resolve(audience)
        except FederationError as exc:
            log.info("no federation key for %s (%s): the shared key seals", audience, exc.reason)
            return None, now + UNKNOWN_TTL_S
        resource = chain.metadata.resource
        jwk = sealing.encryption_jwk(resource.jwks if resource else None)
        if jwk is None:
            log.info("%s publishes no encryption key: sealing with the shared key", audience)
            return None, now + UNKNOWN_TTL_S
        return jwk, min(now + KNOWN_TTL_S, float(chain.exp))


class SealingKeys(Protocol):
    """What sealing needs of the IdP's context (idp.context.IdP has these)."""

    access_token_key: OctKey
    recipients: RecipientKeys | None
    sealing_secret: bytes
    older_access_token_keys: tuple[OctKey, ...]
    older_sealing_secrets: tuple[bytes, ...]


def seal_for(ctx: SealingKeys, audience: str, signed: str) -> str:
    """`signed` sealed for `audience`: to its own key when it publishes one, else shared."""
    jwk = ctx.recipients.key_for(audience) if ctx.recipients is not None else None
    if jwk is None:
        return seal(signed, ctx.access_token_key)
    return sealing.seal_to(signed, jwk, ctx.sealing_secret)


def open_own(ctx: SealingKeys, token: str) -> str:
    """The signed JWT inside an access token this IdP issued, however it was sealed (for
    introspection, revocation and userinfo); InvalidToken when it cannot be opened."""
    if token.count(".") == 4 and sealing.is_sealed_to_key(token):
        try:
            return sealing.open_as_sender(token, (ctx.sealing_secret, *ctx.older_sealing_secrets))
        except ValueError:
            raise InvalidToken("the token cannot be decrypted") from None
    return unseal(token, (ctx.access_token_key, *ctx.older_access_token_keys))
