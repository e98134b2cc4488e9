"""Pairwise pseudonymous subjects (OpenID Connect Core 8.1).

sub = base64url(HMAC-SHA256(key, sector ‖ 0x00 ‖ internal person id)). The key lives in
configuration (PHR_PAIRWISE_KEY), never in the database; each sector remembers which key version
its subjects use, so adding a newer key changes nobody's `sub`. Without the key, subjects of two
sectors cannot be linked to each other or to the person.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from idp.models import Sector
from phr_core.config import ConfigError
from phr_core.pairwise_ids import derive_sector_key

PHR_SECTOR = "phr"  # the named sector of the portal, every PHR server and every connector


def parse_keyring(value: str) -> list[tuple[str, bytes]]:
    """`ID:SECRET ID:SECRET …`, newest first; a bare secret is key id `1`."""
    entries: list[tuple[str, bytes]] = []
    for item in value.split():
        key_id, sep, secret = item.partition(":")
        if not sep:
            key_id, secret = "1", item
        if not key_id or not secret:
            raise ConfigError("PHR_PAIRWISE_KEY entries must look like ID:SECRET")
        entries.append((key_id, secret.encode()))
    if not entries:
        raise ConfigError("PHR_PAIRWISE_KEY is empty")
    if len({k for k, _ in entries}) != len(entries):
        raise ConfigError("PHR_PAIRWISE_KEY names a key id twice")
    return entries


def next_entry(keyring: str, secret: str) -> str:
    """A new keyring entry `ID:SECRET` whose id follows the highest numeric id in use."""
    numbers = [int(k) for k, _ in parse_keyring(keyring) if k.isdigit()]
    return f"{max(numbers, default=0) + 1}:{secret}"


def sector_of_redirect_uris(uris: list[str]) -> str:
    """The sector of a client without a named sector or sector_identifier_uri: the one host all
    its redirect URIs share (OIDC Core 8.1)."""
    hosts = {urlsplit(u).hostname for u in uris}
    host = hosts.pop() if len(hosts) == 1 else None
    if host is None:
        raise ValueError(
            "redirect URIs on several hosts need a sector_identifier_uri listing all of them"
        )
    return host


class PairwiseSubjects:
    """Subjects under the keyring; `reload` (the IdP's: the secret as it is now) is read again
    whenever a sector is first looked up in this process, so a key added by
    `phr idp rotate-pairwise-key` reaches running workers: the sectors registered from then on
    use it, and a sector another worker registered under it is found."""

    def __init__(self, keyring: str, reload: Callable[[], str] | None = None) -> None:
        self._reload = reload
        self._use(keyring)
        self._sector_keys: dict[str, str] = {}
        self._lock = threading.Lock()

    def _use(self, keyring: str) -> None:
        entries = parse_keyring(keyring)
        self._keys = dict(entries)
        self._newest = entries[0][0]

    def _read_again(self) -> None:
        if self._reload is not None:
            self._use(self._reload())

    def _key_id(self, s: Session, sector: str) -> str:
        known = self._sector_keys.get(sector)
        if known:
            return known
        self._read_again()  # once per sector and process: the newest key for a new sector
        row = s.get(Sector, sector)
        if row is None:
            try:
                with s.begin_nested():
                    row = Sector(sector=sector, key_id=self._newest)
                    s.add(row)
            except IntegrityError:  # another worker registered it first
                row = s.get(Sector, sector)
        assert row is not None  # noqa: S101 - narrowing: the row another worker committed
        if row.key_id not in self._keys:
            raise ConfigError(
                f"pairwise key id {row.key_id!r} of a sector is missing from PHR_PAIRWISE_KEY"
            )
        with self._lock:
            self._sector_keys[sector] = row.key_id
        return row.key_id

    def subject(self, s: Session, sector: str, person_id: str) -> str:
        key_id = self._key_id(s, sector)  # first: it may read the keyring again
        key = self._keys[key_id]
        mac = hmac.new(key, sector.encode() + b"\x00" + person_id.encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()

    def id_key(self, s: Session, sector: str) -> bytes:
        """The sector's key for pairwise logical ids at the PHR servers (phr_core.pairwise_ids):
        from the same versioned key as the sector's subjects, so it never changes for a sector
        either, and under another derivation, so it reveals nothing about any `sub`."""
        key_id = self._key_id(s, sector)
        return derive_sector_key(self._keys[key_id], sector)
