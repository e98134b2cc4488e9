"""The city's keyed pseudonymous code of a resident: base64url (no padding) of
HMAC-SHA256(PHR_CONNECTOR_PSEUDONYM_KEY, resident number). The key never leaves the city, so
nobody outside can compute or reverse the code; the same resident always gets the same code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata


class Pseudonymizer:
    def __init__(self, key: str | bytes) -> None:
        self._key = key.encode() if isinstance(key, str) else key
        if len(self._key) < 16:
            raise ValueError("the pseudonym key is too short")
        self._cache: dict[str, str] = {}

    def code(self, resident_number: str) -> str:
        """The code for a resident number (normalised: NFKC, spaces removed)."""
        norm = unicodedata.normalize("NFKC", resident_number).replace(" ", "").strip()
        hit = self._cache.get(norm)
        if hit is not None:
            return hit
        mac = hmac.new(self._key, norm.encode(), hashlib.sha256).digest()
        out = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
        if len(self._cache) < 200_000:
            self._cache[norm] = out
        return out

    def record_key(self, source: str, key: str) -> str:
        """An opaque, stable key for a source record: the export's own record number may embed
        a resident number or other identifiers, so it is keyed-hashed before it goes out."""
        mac = hmac.new(self._key, f"record|{source}|{key}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:18]).decode()
