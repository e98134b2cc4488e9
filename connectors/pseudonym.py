"""The city's keyed pseudonymous code of a resident: base64url (no padding) of
HMAC-SHA256(PHR_CONNECTOR_PSEUDONYM_KEY, resident number). The key never leaves the city, so
nobody outside can compute or reverse the code; the same resident always gets the same code.

Rotation (`phr connector rotate-pseudonym-key`, connectors/pseudonym_keys.py): the secret may
hold several keys separated by spaces, newest first. A resident the register held at the last
rotation keeps the code they had (the consent links and PHR records are under it): `kept` maps
the resident's code under the newest key to the id of the older key their code is made with.
Everyone else (a birth, a move into the city after the rotation) gets a code under the newest
key. Record keys stay under the first key ever used, so a record sent before a rotation keeps
its identity at the PHR server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata
from collections.abc import Mapping

MIN_KEY_BYTES = 16


def _mac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _text(mac: bytes) -> str:
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def key_id(key: bytes) -> str:
    """A short public name of one pseudonym key (reveals nothing of the key)."""
    return _text(_mac(key, b"phr/pseudonym-key-id/v1"))[:12]


def parse_keys(secret: str | bytes) -> list[bytes]:
    """The keys of the secret, newest first (bytes: one key as it is)."""
    keys = [secret] if isinstance(secret, bytes) else [p.encode() for p in secret.split()]
    if not keys or any(len(k) < MIN_KEY_BYTES for k in keys):
        raise ValueError("the pseudonym key is too short")
    return keys


def normalized(resident_number: str) -> str:
    return unicodedata.normalize("NFKC", resident_number).replace(" ", "").strip()


class Pseudonymizer:
    def __init__(
        self, key: str | bytes, kept: Mapping[str, Mapping[str, str]] | None = None
    ) -> None:
        """`kept`: per rotation, the key id it put in front → {a resident's code under that
        key: the key id their code stays made with} (connectors.pseudonym_keys)."""
        self._keys = parse_keys(key)
        self._by_id = {key_id(k): k for k in self._keys}
        self._kept = kept or {}
        self._cache: dict[str, str] = {}

    @property
    def newest_id(self) -> str:
        return key_id(self._keys[0])

    def key_id_of(self, resident_number: str) -> str:
        """Which key the resident's code is made with: the latest rotation that knew the
        resident says so (each rotation's records are kept, so a resident absent from a later
        rotation's register, moved out and back, keeps their code); else the newest key."""
        norm = normalized(resident_number).encode()
        for kid, k in self._by_id.items():  # newest first, ids computed once in __init__
            known = self._kept.get(kid)
            if known:
                kept = known.get(_text(_mac(k, norm)))
                if kept in self._by_id:
                    return kept
        return self.newest_id

    def code_under(self, key: str, resident_number: str) -> str:
        """The resident's code under the key named `key` (an id of key_id)."""
        return _text(_mac(self._by_id[key], normalized(resident_number).encode()))

    def code(self, resident_number: str) -> str:
        """The code for a resident number (normalised: NFKC, spaces removed)."""
        norm = normalized(resident_number)
        hit = self._cache.get(norm)
        if hit is not None:
            return hit
        out = self.code_under(self.key_id_of(norm), norm)
        if len(self._cache) < 200_000:
            self._cache[norm] = out
        return out

    def record_key(self, source: str, key: str) -> str:
        """An opaque, stable key for a source record: the export's own record number may embed
        a resident number or other identifiers, so it is keyed-hashed before it goes out (under
        the oldest key: a record keeps its identity across rotations)."""
        mac = _mac(self._keys[-1], f"record|{source}|{key}".encode())
        return base64.urlsafe_b64encode(mac[:18]).decode()
