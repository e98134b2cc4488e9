"""A software WebAuthn authenticator (ES256, "none" attestation) for HTTP tests: it builds
real authenticator data, clientDataJSON and signatures, so the server's `webauthn` checks run
unmodified; knobs make the bad cases (no user verification, another origin, a counter that
goes backwards, a tampered signature)."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    def __init__(self, origin: str, *, synced: bool = False) -> None:
        self.origin = origin
        self.rp_id = origin.split("://", 1)[1].split(":")[0]
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)
        self.sign_count = 0
        self.synced = synced  # backup eligible and backed up: a synced passkey
        self.user_handle: str | None = None

    def _cose_key(self) -> bytes:
        nums = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {1: 2, 3: -7, -1: 1, -2: nums.x.to_bytes(32, "big"), -3: nums.y.to_bytes(32, "big")}
        )

    def _auth_data(self, *, attested: bool, uv: bool, rp_id: str | None = None) -> bytes:
        flags = 0x01 | (0x04 if uv else 0) | (0x18 if self.synced else 0)
        if attested:
            flags |= 0x40
        data = hashlib.sha256((rp_id or self.rp_id).encode()).digest()
        data += bytes([flags]) + self.sign_count.to_bytes(4, "big")
        if attested:
            data += bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id
            data += self._cose_key()
        return data

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": challenge,
                "origin": origin or self.origin,
                "crossOrigin": False,
            }
        ).encode()

    def create(self, options: dict, *, uv: bool = True, origin: str | None = None) -> dict:
        """navigator.credentials.create() for creation options (JSON form)."""
        assert options["rp"]["id"] == self.rp_id
        self.user_handle = options["user"]["id"]
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        attestation = cbor2.dumps(
            {"fmt": "none", "attStmt": {}, "authData": self._auth_data(attested=True, uv=uv)}
        )
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal", "hybrid"],
            },
            "clientExtensionResults": {},
        }

    def get(
        self,
        options: dict,
        *,
        uv: bool = True,
        origin: str | None = None,
        counter_step: int = 1,
        tamper: bool = False,
        credential_id: bytes | None = None,
    ) -> dict:
        """navigator.credentials.get() for request options (JSON form)."""
        self.sign_count = max(0, self.sign_count + counter_step)
        auth_data = self._auth_data(attested=False, uv=uv)
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signed = auth_data + hashlib.sha256(client_data).digest()
        if tamper:
            signed = signed[:-1] + bytes([signed[-1] ^ 1])
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        cid = credential_id or self.credential_id
        response = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if self.user_handle and credential_id is None:
            response["userHandle"] = self.user_handle
        return {
            "id": b64url(cid),
            "rawId": b64url(cid),
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
        }
