"""Pairwise logical ids: each app sector sees its own id for every resource (issue 14).

An app's sector gets its own key (the IdP derives it from its pairwise keyring, the same one
as the sector's `sub`, and hands it to the resource server inside the sealed access token,
claim `phr_sector_key`). Under that key an id is encrypted deterministically with AES-SIV
(RFC 5297), bound to the resource type: the same resource has the same id every time the
sector reads it, so an app can read by the ids it was given; two sectors' ids are unrelated;
and an id that does not decrypt under the sector's key is simply unknown (404).

Why the key travels in the token rather than being derived at each PHR server from a shared
platform secret: the IdP must name the SMART launch `patient` in the sector's terms, and the
record may be held by any city's PHR server (a family that moved). With the key in the sealed
token every PHR server in the federation maps ids alike with no new secret shared between
services; a server learns only the keys of sectors whose tokens it receives, which it needs
anyway. Introspection never returns the claim, and the app cannot open its token.

The encoding is a valid FHIR id ([A-Za-z0-9-.]{1,64}): base64 with `-` and `.` as its two
extra characters. A UUID (every id the server assigns) is packed into 16 bytes, so its
pairwise id is 44 characters; any other id is packed at 6 bits a character, which keeps ids of
up to 41 characters within 64 (the write door refuses longer ones that are not UUIDs).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CLAIM = "phr_sector_key"  # access-token claim: base64url of the sector's 64-byte key
KEY_BYTES = 64  # AES-256-SIV
MAX_PLAIN_ID = 41  # a non-UUID id longer than this has no pairwise id within 64 characters

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-."
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
_ALT = b"-."
_UUID_TAG = 0
_RAW_TAG = 0xFF
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CACHE_SIZE = 8192  # ids remembered per sector and process (the same Patient, over and over)

# Identifier systems whose values name a person, a record or a client of the platform: an
# app sees them only as its sector's values (the system, e.g. which city, stays readable).
MAPPED_SYSTEMS = (
    "urn:phr-platform:pseudonym:",
    "urn:phr-platform:source:",
    "urn:phr-platform:oauth-client",
    "urn:phr-platform:phr-subject",
)


def derive_sector_key(secret: bytes, sector: str) -> bytes:
    """The sector's id key from one of the IdP's pairwise secrets (HKDF-SHA256)."""
    info = b"phr/pairwise-ids/v1\x00" + sector.encode()
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(secret)


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode()


def decode_key(text: object) -> bytes | None:
    """The key of a `phr_sector_key` claim, or None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == KEY_BYTES else None


def _b64(data: bytes) -> str:
    return base64.b64encode(data, altchars=_ALT).rstrip(b"=").decode()


def _unb64(text: str) -> bytes | None:
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), altchars=_ALT, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if _b64(data) == text else None  # one spelling per id


def _pack(rid: str) -> bytes:
    if len(rid) == 36 and _UUID_RE.fullmatch(rid):
        return bytes((_UUID_TAG,)) + bytes.fromhex(rid.replace("-", ""))
    if 0 < len(rid) < _RAW_TAG and all(c in _INDEX for c in rid):
        n = 0
        for c in rid:
            n = n * 64 + _INDEX[c]
        return bytes((len(rid),)) + n.to_bytes((6 * len(rid) + 7) // 8, "big")
    return bytes((_RAW_TAG,)) + rid.encode()


def _unpack(data: bytes) -> str | None:
    if not data:
        return None
    tag, rest = data[0], data[1:]
    if tag == _UUID_TAG:
        return str(uuid.UUID(bytes=rest)) if len(rest) == 16 else None
    if tag == _RAW_TAG:
        return rest.decode(errors="replace")
    n = int.from_bytes(rest, "big")
    chars = []
    for _ in range(tag):
        n, i = divmod(n, 64)
        chars.append(ALPHABET[i])
    return "".join(reversed(chars))


class SectorIds:
    """One sector's mapping of ids, identifier values and paging cursors (both ways)."""

    def __init__(self, key: bytes) -> None:
        self._siv = AESSIV(key)
        # (type, id), (system, value) or ("", reference) → the sector's value; deterministic,
        # so remembered (bounded): a Bundle names the same Patient in every entry.
        self._out: dict[tuple[str, str], str] = {}

    def _seal(self, plain: bytes, *context: bytes) -> str:
        return _b64(self._siv.encrypt(plain, list(context)))

    def _open(self, text: str, *context: bytes) -> bytes | None:
        data = _unb64(text)
        if data is None or len(data) < 17:
            return None
        try:
            return self._siv.decrypt(data, list(context))
        except InvalidTag:
            return None

    def out(self, rtype: str, rid: str) -> str:
        """The sector's id of `rtype/rid`."""
        key = (rtype, rid)
        sid = self._out.get(key)
        if sid is None:
            sid = self._seal(_pack(rid), b"id", rtype.encode())
            self._remember(key, sid)
        return sid

    def into(self, rtype: str, sid: str) -> str | None:
        """The real id behind a sector id of `rtype`; None when it is not one."""
        plain = self._open(sid, b"id", rtype.encode())
        return None if plain is None else _unpack(plain)

    def ref_out(self, ref: str) -> str:
        """`Type/id` or `Type/id/_history/n` in the sector's ids (other forms unchanged)."""
        key = ("", ref)
        out = self._out.get(key)
        if out is None:
            out = self._ref_out(ref)
            self._remember(key, out)
        return out

    def _remember(self, key: tuple[str, str], value: str) -> None:
        if len(self._out) >= _CACHE_SIZE:
            self._out.clear()
        self._out[key] = value

    def _ref_out(self, ref: str) -> str:
        rtype, sep, rest = ref.partition("/")
        if not sep or not rtype[:1].isupper() or not rest:
            return ref
        rid, hist, version = rest.partition("/_history/")
        if "/" in rid or "/" in version or ":" in rtype:
            return ref
        return f"{rtype}/{self.out(rtype, rid)}" + (f"/_history/{version}" if hist else "")

    def value_out(self, system: str, value: str) -> str:
        """An identifier value of a mapped system as the sector's value."""
        key = (system, value)  # a system is never a resource type: one cache for both
        out = self._out.get(key)
        if out is None:
            out = self._seal(value.encode(), b"identifier", system.encode())
            self._remember(key, out)
        return out

    def value_in(self, system: str, sval: str) -> str | None:
        plain = self._open(sval, b"identifier", system.encode())
        return None if plain is None else plain.decode(errors="replace")

    def seal_text(self, purpose: str, text: str) -> str:
        """Anything else the sector is handed and gives back (a paging cursor)."""
        return self._seal(text.encode(), b"text", purpose.encode())

    def open_text(self, purpose: str, sealed: str) -> str | None:
        plain = self._open(sealed, b"text", purpose.encode())
        return None if plain is None else plain.decode(errors="replace")


@functools.lru_cache(maxsize=64)
def for_key(key: bytes) -> SectorIds:
    """The mapping of one sector key (kept: a read costs a dictionary lookup, not a setup).
    64 sectors × _CACHE_SIZE ids bound what a worker remembers to a few tens of MB, however
    many apps are registered; a sector pushed out only costs its ids' encryption again."""
    return SectorIds(key)


def fallback_key(secret: bytes, issuer: str, client_id: str) -> bytes:
    """A resource server's own key for a token that names no sector key (an OpenID provider
    that does not send one): ids are then pairwise per client at this server."""
    info = b"phr/pairwise-ids/fallback/v1\x00" + issuer.encode() + b"\x00" + client_id.encode()
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(
        hashlib.sha256(secret).digest()
    )


def fits(rid: str) -> bool:
    """Whether a stored id's pairwise id is a valid FHIR id (at most 64 characters)."""
    return len(rid) <= MAX_PLAIN_ID or bool(_UUID_RE.fullmatch(rid))


def is_mapped_system(system: object) -> bool:
    return isinstance(system, str) and system.startswith(MAPPED_SYSTEMS)
