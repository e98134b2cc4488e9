"""Sealing resource bodies at rest (envelope encryption).

Each municipality has its own 256-bit data keys (table `fhir_data_key`); a data key is stored
only wrapped with AES-256-GCM under a key-encryption key derived from PHR_FHIR_DATA_KEY (the
master key). A resource body is sealed with AES-256-GCM under its municipality's newest data
key, with the resource's type, id, version and key id as associated data, so a body copied onto
another row fails to open instead of being misread. The row keeps the key id.

PHR_FHIR_DATA_KEY may hold several secrets separated by spaces, newest first: the first wraps,
all of them unwrap. `phr fhir rotate-keys` re-wraps every data key under the newest master key
(rows are untouched, so servers keep running) and can start new data keys and re-seal rows.

Format 1 (`ResourceCipher`, before envelope encryption) is still read; rotate-keys re-seals it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from phr_core import jsonbytes
from phr_core.secrets import derive_key
from phr_server.models import DataKey, table_of

NONCE_BYTES = 12
FORMAT_V1 = b"\x01"
FORMAT_V2 = b"\x02"
PLATFORM_SCOPE = "platform"


class ResourceCipher:
    """Format 1: resource JSON sealed with a key derived directly from PHR_FHIR_DATA_KEY."""

    def __init__(self, secret: str) -> None:
        self._aead = AESGCM(derive_key(secret, "phr_server/resource-body/v1"))

    @staticmethod
    def _aad(resource_type: str, resource_id: str, version: int) -> bytes:
        return f"{resource_type}/{resource_id}/_history/{version}".encode()

    def seal(self, resource: dict[str, Any], version: int) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode()
        aad = self._aad(resource["resourceType"], resource["id"], version)
        return FORMAT_V1 + nonce + self._aead.encrypt(nonce, plain, aad)

    def open_bytes(self, blob: bytes, resource_type: str, resource_id: str, version: int) -> bytes:
        blob = bytes(blob)
        if blob[:1] != FORMAT_V1:
            raise ValueError("unknown stored-resource format")
        nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        return self._aead.decrypt(nonce, sealed, self._aad(resource_type, resource_id, version))

    def open(self, blob: bytes, resource_type: str, resource_id: str, version: int) -> dict:
        return json.loads(self.open_bytes(blob, resource_type, resource_id, version))


class MasterKeys:
    """The key-encryption keys from PHR_FHIR_DATA_KEY, newest first, each with a short id."""

    def __init__(self, secret: str) -> None:
        parts = secret.split()
        if not parts:
            raise ValueError("PHR_FHIR_DATA_KEY is empty")
        self.keys: list[tuple[str, AESGCM]] = []
        for part in parts:
            kek = derive_key(part, "phr_server/key-encryption-key/v2")
            kid = hashlib.sha256(b"kid:" + kek).hexdigest()[:16]
            self.keys.append((kid, AESGCM(kek)))
        self.legacy = ResourceCipher(parts[0])

    @property
    def current_kid(self) -> str:
        return self.keys[0][0]

    def wrap(self, dek: bytes, scope: str) -> tuple[str, bytes]:
        kid, aead = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        return kid, nonce + aead.encrypt(nonce, dek, f"phr-dek/{scope}".encode())

    def unwrap(self, kid: str, wrapped: bytes, scope: str) -> bytes:
        for k, aead in self.keys:
            if k == kid:
                return aead.decrypt(
                    wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], f"phr-dek/{scope}".encode()
                )
        raise KeyError(f"data key wrapped by master key {kid}, which PHR_FHIR_DATA_KEY lacks")


class Keyring:
    """Data keys by id (unwrapped once per process and cached, with their AES-GCM and MAC
    keys) and the newest key per scope. `s` may be a Session or, for reads, a Connection; or
    None where only keys already cached may be used (the audit's group commit, which runs on
    the driver's connection: audit_batch.py)."""

    def __init__(self, secret: str) -> None:
        self.masters = MasterKeys(secret)
        self._by_id: dict[int, bytes] = {}
        self._aead: dict[int, AESGCM] = {}
        self._mac_keys: dict[int, bytes] = {}
        self._current: dict[str, int] = {}
        self._lock = threading.Lock()

    def forget(self) -> None:
        with self._lock:
            self._by_id.clear()
            self._aead.clear()
            self._mac_keys.clear()
            self._current.clear()

    def _load(self, s: Session | Connection | None, key_id: int) -> bytes:
        dek = self._by_id.get(key_id)
        if dek is None:
            if s is None:
                raise LookupError(f"data key {key_id} is not loaded yet")
            table = table_of(DataKey)
            row = s.execute(
                select(table.c.master_kid, table.c.wrapped, table.c.scope).where(
                    table.c.id == key_id
                )
            ).first()
            if row is None:
                raise KeyError(f"data key {key_id} does not exist")
            dek = self.masters.unwrap(row.master_kid, bytes(row.wrapped), row.scope)
            with self._lock:
                self._by_id[key_id] = dek
        return dek

    def _cipher(self, s: Session | Connection | None, key_id: int) -> AESGCM:
        aead = self._aead.get(key_id)
        if aead is None:
            aead = AESGCM(self._load(s, key_id))
            with self._lock:
                self._aead[key_id] = aead
        return aead

    def current(self, s: Session | Connection | None, scope: str) -> int:
        """The id of the newest active data key of `scope`, made on first use (which takes a
        Session: a Connection finds the keys that exist)."""
        key_id = self._current.get(scope)
        if key_id is not None:
            return key_id
        if s is None:
            raise LookupError(f"the data key of {scope} is not loaded yet")
        key_id = s.scalar(
            select(DataKey.id)
            .where(DataKey.scope == scope, DataKey.active.is_(True))
            .order_by(DataKey.id.desc())
            .limit(1)
        )
        if key_id is None:
            if not isinstance(s, Session):
                raise LookupError(f"no data key of {scope} yet; one is made in a Session")
            key_id = self.new_key(s, scope)
        with self._lock:
            self._current[scope] = key_id
        return key_id

    def new_key(self, s: Session, scope: str) -> int:
        dek = AESGCM.generate_key(256)
        kid, wrapped = self.masters.wrap(dek, scope)
        row = DataKey(scope=scope, wrapped=wrapped, master_kid=kid, active=True)
        s.add(row)
        s.flush()
        with self._lock:
            self._by_id[row.id] = dek
        return row.id

    @staticmethod
    def _aad(resource_type: str, resource_id: str, version: int, key_id: int) -> bytes:
        return f"{resource_type}/{resource_id}/_history/{version}#k{key_id}".encode()

    def seal(
        self,
        s: Session | Connection | None,
        key_id: int,
        resource_type: str,
        resource_id: str,
        version: int,
        data: bytes,
    ) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        aad = self._aad(resource_type, resource_id, version, key_id)
        return FORMAT_V2 + nonce + self._cipher(s, key_id).encrypt(nonce, data, aad)

    def open(
        self,
        s: Session | Connection,
        key_id: int | None,
        resource_type: str,
        resource_id: str,
        version: int,
        blob: bytes,
    ) -> bytes:
        """The stored JSON bytes of one version."""
        blob = bytes(blob)  # psycopg hands back memoryview
        if blob[:1] == FORMAT_V1:
            return self.masters.legacy.open_bytes(blob, resource_type, resource_id, version)
        if blob[:1] != FORMAT_V2 or key_id is None:
            raise ValueError("unknown stored-resource format")
        aad = self._aad(resource_type, resource_id, version, key_id)
        return self._cipher(s, key_id).decrypt(
            blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :], aad
        )

    def content_mac(self, s: Session, key_id: int, content: bytes) -> str:
        """HMAC-SHA256 of canonical content under a key derived from the data key."""
        mac_key = self._mac_keys.get(key_id)
        if mac_key is None:
            mac_key = hashlib.sha256(b"phr-content-mac:" + self._load(s, key_id)).digest()
            with self._lock:
                self._mac_keys[key_id] = mac_key
        return hmac.new(mac_key, content, hashlib.sha256).hexdigest()


def canonical(resource: dict[str, Any]) -> bytes:
    """Stable JSON bytes (sorted keys, no spaces, UTF-8) of a resource without `meta`'s
    server-set parts: two loads of the same content give the same bytes."""
    content = dict(resource)
    meta = dict(content.get("meta") or {})
    meta.pop("versionId", None)
    meta.pop("lastUpdated", None)
    if meta:
        content["meta"] = meta
    else:
        content.pop("meta", None)
    return jsonbytes.dumps(content, sort_keys=True)


def serialize(resource: dict[str, Any]) -> bytes:
    return jsonbytes.dumps(resource)
