"""PHR_IDP_DATA_KEY as several keys, newest first, so that it can be rotated
(`phr idp rotate-data-key`, idp.data_key_rotation).

The data key has three kinds of use, and each takes a rotation differently:

* Sealing (signing keys, card-verified attributes): sealed with the newest key, opened with any
  (phr_core.rotating_aead); the rotation's re-seal pass moves everything under the newest.
* Keyed hashes looked up again later, that can be computed again (the counter's name and birth
  date index, enrollment codes): made with the newest key, looked up under every key; the pass
  re-indexes, codes live 15 minutes.
* Identifiers that must never change (passkey user handles, which authenticators keep;
  certificate bindings and auth-app subjects, which are keyed hashes of something the IdP never
  stores and so cannot be computed again; the auth-app PKCE verifier key, which every worker
  must share while a sign-in is in flight): their keys stay those derived from the first data
  key. When the old keys are retired, those derived keys (not the old key) are kept in the
  secret as one entry `idp-ids-v1:…`; nothing is sealed or indexed under them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from phr_core.rotating_aead import RotatingAead
from phr_core.secrets import derive_key

PINNED_PREFIX = "idp-ids-v1:"
IDENTIFIER_PURPOSES = (
    "idp/passkey-user/v1",
    "idp/card-binding/v1",
    "idp/authapp-subject/v1",
    "idp/authapp-pkce/v1",
)
SIGNING_KEYS = "idp/signing-keys/v1"
CARD_ATTRIBUTES = "idp/card-attributes/v1"


class DataKeys:
    """The keys of one value of PHR_IDP_DATA_KEY."""

    def __init__(self, secret: str) -> None:
        parts = secret.split()
        self.entries = [p for p in parts if not p.startswith(PINNED_PREFIX)]
        if not self.entries:
            raise ValueError("PHR_IDP_DATA_KEY holds no key")
        pinned = [p for p in parts if p.startswith(PINNED_PREFIX)]
        self._pinned = _parse_pinned(pinned[0]) if pinned else None

    def derive(self, purpose: str) -> bytes:
        """The newest key's key for `purpose`: what is made now."""
        return derive_key(self.entries[0], purpose)

    def derive_all(self, purpose: str) -> list[bytes]:
        """Every key's key for `purpose`, newest first: what may still be looked up."""
        return [derive_key(entry, purpose) for entry in self.entries]

    def aead(self, purpose: str) -> RotatingAead:
        return RotatingAead.derived(self.entries, purpose)

    def identifier_key(self, purpose: str) -> bytes:
        """The key of a stable identifier: the kept one after a retirement, else the oldest
        key's (before any rotation the only key, so nothing changes)."""
        if purpose not in IDENTIFIER_PURPOSES:
            raise KeyError(purpose)
        if self._pinned is not None:
            return self._pinned[purpose]
        return derive_key(self.entries[-1], purpose)

    def pinned_entry(self) -> str:
        """The entry that keeps the identifier keys when the keys they came from are dropped."""
        raw = b"".join(self.identifier_key(p) for p in IDENTIFIER_PURPOSES)
        return PINNED_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def has_older(self) -> bool:
        return len(self.entries) > 1


def _parse_pinned(entry: str) -> dict[str, bytes]:
    text = entry.removeprefix(PINNED_PREFIX)
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(raw) != 32 * len(IDENTIFIER_PURPOSES):
        raise ValueError("PHR_IDP_DATA_KEY: the kept identifier keys are damaged")
    return {p: raw[32 * i : 32 * (i + 1)] for i, p in enumerate(IDENTIFIER_PURPOSES)}


def keyed_hash(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()
