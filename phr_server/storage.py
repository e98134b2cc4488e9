"""Sealing resource bodies at rest: AES-256-GCM with the resource's type, id and version as
associated data, so a body copied onto another row fails to open instead of being misread."""

from __future__ import annotations

import json
import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phr_core.secrets import derive_key

NONCE_BYTES = 12
FORMAT_V1 = b"\x01"


class ResourceCipher:
    """Encrypts and decrypts resource JSON with a key derived from PHR_FHIR_DATA_KEY."""

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

    def open(self, blob: bytes, resource_type: str, resource_id: str, version: int) -> dict:
        if blob[:1] != FORMAT_V1:
            raise ValueError("unknown stored-resource format")
        nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        plain = self._aead.decrypt(nonce, sealed, self._aad(resource_type, resource_id, version))
        return json.loads(plain)
