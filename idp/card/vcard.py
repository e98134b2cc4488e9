"""The virtual My Number card: a JSON file holding what a real card's chip holds, two key pairs
and their certificates, with the rules a real card enforces.

- Each private key is encrypted under its own PIN (scrypt → AES-256-GCM); a wrong PIN fails the
  GCM tag check.
- The user-authentication key has a 4-digit PIN and locks after 3 wrong tries; the signature key
  a 6–16 character PIN (upper-case letters and digits) and locks after 5. The counters are kept
  in the file, so they survive across runs, and a correct PIN resets them, as on a real card.

A virtual card is a development tool: anyone holding the file can try every 4-digit PIN offline.
The card's chip is what makes a real card safe; the verification at the IdP is the same.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from idp.card.errors import CardError
from idp.card.profile import AUTH, SIGN

FORMAT = "phr-virtual-card/v1"
MAX_TRIES = {AUTH: 3, SIGN: 5}
PIN_RULES = {
    AUTH: (re.compile(r"^[0-9]{4}$"), "the user-authentication PIN is 4 digits"),
    SIGN: (
        re.compile(r"^[A-Z0-9]{6,16}$"),
        "the signature PIN is 6 to 16 upper-case letters and digits",
    ),
}
_SCRYPT_N = 2**14


class PinFormatError(ValueError):
    """A PIN that cannot be set (wrong length or characters)."""


def check_pin_format(kind: str, pin: str) -> str:
    pattern, rule = PIN_RULES[kind]
    pin = pin.strip().upper()
    if not pattern.match(pin):
        raise PinFormatError(rule)
    return pin


def _kdf(pin: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=8, p=1).derive(pin.encode())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _seal_key(kind: str, key: rsa.RSAPrivateKey, pin: str) -> dict[str, str]:
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    sealed = AESGCM(_kdf(pin, salt)).encrypt(nonce, der, kind.encode())
    return {"kdf": "scrypt", "salt": _b64(salt), "nonce": _b64(nonce), "ciphertext": _b64(sealed)}


@dataclass
class VirtualCard:
    path: Path
    data: dict[str, Any]

    # --- making and storing -----------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path,
        auth: tuple[x509.Certificate, rsa.RSAPrivateKey],
        sign: tuple[x509.Certificate, rsa.RSAPrivateKey],
        auth_pin: str,
        sign_pin: str,
    ) -> VirtualCard:
        card = cls(Path(path), {"format": FORMAT})
        card.load_keys(auth, sign, auth_pin, sign_pin)
        return card

    def load_keys(
        self,
        auth: tuple[x509.Certificate, rsa.RSAPrivateKey],
        sign: tuple[x509.Certificate, rsa.RSAPrivateKey],
        auth_pin: str,
        sign_pin: str,
    ) -> None:
        """Write (new) certificates and keys onto the card, as the city office does."""
        pins = {AUTH: check_pin_format(AUTH, auth_pin), SIGN: check_pin_format(SIGN, sign_pin)}
        for kind, (cert, key) in ((AUTH, auth), (SIGN, sign)):
            self.data[kind] = {
                "certificate": _b64(cert.public_bytes(serialization.Encoding.DER)),
                "key": _seal_key(kind, key, pins[kind]),
                "tries_left": MAX_TRIES[kind],
            }
        self.save()

    def replace_signature_key(
        self, sign: tuple[x509.Certificate, rsa.RSAPrivateKey], sign_pin: str
    ) -> None:
        """A new signature certificate and key on the same card (after a move)."""
        cert, key = sign
        pin = check_pin_format(SIGN, sign_pin)
        self.data[SIGN] = {
            "certificate": _b64(cert.public_bytes(serialization.Encoding.DER)),
            "key": _seal_key(SIGN, key, pin),
            "tries_left": MAX_TRIES[SIGN],
        }
        self.save()

    @classmethod
    def load(cls, path: Path) -> VirtualCard:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path} is not a readable virtual card ({exc})") from None
        if data.get("format") != FORMAT:
            raise ValueError(f"{path} is not a virtual card ({FORMAT})")
        return cls(Path(path), data)

    def save(self) -> None:
        """Atomically, so a crash never loses a wrong-PIN count or a key."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.data, fh, indent=1)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    # --- reading ----------------------------------------------------------------------------

    def certificate_der(self, kind: str) -> bytes:
        return base64.b64decode(self.data[kind]["certificate"])

    def certificate(self, kind: str) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.certificate_der(kind))

    def tries_left(self, kind: str) -> int:
        return int(self.data[kind]["tries_left"])

    # --- the chip's one operation: sign after the PIN ---------------------------------------

    def sign(self, kind: str, pin: str, data: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 / SHA-256 over `data` with the key of `kind`, after the PIN."""
        key = self._unlock(kind, pin)
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def unlock(self, kind: str, pin: str) -> rsa.RSAPrivateKey:
        """The key of `kind` after its PIN, counting a wrong PIN as the chip does (for the
        virtual JPKI chip behind a virtual reader, idp.card.virtual_reader)."""
        return self._unlock(kind, pin)

    def _unlock(self, kind: str, pin: str) -> rsa.RSAPrivateKey:
        # Re-read the counters: another process may have used the card since we loaded it.
        fresh = VirtualCard.load(self.path)
        self.data = fresh.data
        slot = self.data[kind]
        if slot["tries_left"] <= 0:
            raise CardError("card_locked")
        sealed = slot["key"]
        try:
            der = AESGCM(_kdf(pin.strip().upper(), base64.b64decode(sealed["salt"]))).decrypt(
                base64.b64decode(sealed["nonce"]),
                base64.b64decode(sealed["ciphertext"]),
                kind.encode(),
            )
        except Exception:
            slot["tries_left"] -= 1
            self.save()
            if slot["tries_left"] <= 0:
                raise CardError("card_locked") from None
            raise CardError("wrong_pin", tries_left=slot["tries_left"]) from None
        if slot["tries_left"] != MAX_TRIES[kind]:
            slot["tries_left"] = MAX_TRIES[kind]
            self.save()
        key = serialization.load_der_private_key(der, password=None)
        assert isinstance(key, rsa.RSAPrivateKey)  # noqa: S101 - narrowing: the card's own RSA key
        return key
