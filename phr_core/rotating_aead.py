"""AES-256-GCM under a rotatable secret (several keys separated by spaces, newest first; see
phr_core.key_rotation): seal with the newest key, open with whichever key sealed.

Ciphertexts carry no key id, so the formats already stored stay as they are: opening tries the
keys newest first (a wrong key fails the GCM tag, never yields garbage). A secret holds two or
three keys at most, and only between a rotation and its retirement; a re-seal pass
(`needs_reseal`) moves what the older keys sealed under the newest before they are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phr_core.secrets import derive_key


class RotatingAead:
    """AES-GCM under several keys, newest first."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a secret with no key")
        self._aeads = [AESGCM(key) for key in keys]

    @classmethod
    def derived(cls, entries: Sequence[str], purpose: str) -> RotatingAead:
        """The keys derived for one `purpose` from each entry of a secret."""
        return cls([derive_key(entry, purpose) for entry in entries])

    @classmethod
    def of(cls, secret: str, purpose: str) -> RotatingAead:
        """From the secret's value as configured ("NEWEST OLDER …")."""
        return cls.derived(secret.split(), purpose)

    def encrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
        return self._aeads[0].encrypt(nonce, data, aad)

    def decrypt_with_index(self, nonce: bytes, data: bytes, aad: bytes | None) -> tuple[bytes, int]:
        """The plaintext and which key opened it (0: the newest). InvalidTag when none does."""
        for index, aead in enumerate(self._aeads):
            try:
                return aead.decrypt(nonce, data, aad), index
            except InvalidTag:
                continue
        raise InvalidTag

    def decrypt(self, nonce: bytes, data: bytes, aad: bytes | None) -> bytes:
        return self.decrypt_with_index(nonce, data, aad)[0]

    def needs_reseal(self, nonce: bytes, data: bytes, aad: bytes | None) -> bool:
        """Whether an older key sealed this (a re-seal pass moves it under the newest)."""
        return self.decrypt_with_index(nonce, data, aad)[1] != 0
