"""The certificate profile of the two card certificates, shared by the development authority
(which issues them) and the verifier (which reads them).

What is modelled on JPKI and what is ours:
- Certificate type by certificate-policy OID. The two OIDs below are in JPKI's arc
  (1.2.392.200149.8.5 = J-LIS); the exact values are our reading of J-LIS material and are
  UNVERIFIED, so a production deployment checks them against the real certificates.
- User-authentication certificate: keyUsage digitalSignature only, no personal data.
- Signature certificate: keyUsage digitalSignature + nonRepudiation; the four basic attributes
  (name, birth date, sex, address) as subjectAltName otherName entries, as JPKI does.
- Pair binding (our stand-in for J-LIS's 証明書紐付け情報): the signature certificate carries,
  signed by the authority, the SHA-256 of the user-authentication certificate's public key
  (SubjectPublicKeyInfo), so the IdP can check offline that both certificates are on one card.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ObjectIdentifier

AUTH = "auth"  # 利用者証明用電子証明書
SIGN = "sign"  # 署名用電子証明書

POLICY_OIDS = {
    AUTH: ObjectIdentifier("1.2.392.200149.8.5.1.3.1"),
    SIGN: ObjectIdentifier("1.2.392.200149.8.5.1.1.10"),
}
TYPE_BY_POLICY = {oid: kind for kind, oid in POLICY_OIDS.items()}

# subjectAltName otherName type ids for the four basic attributes (基本4情報).
ATTRIBUTE_OIDS = {
    "name": ObjectIdentifier("1.2.392.200149.8.5.5.1"),
    "birthdate": ObjectIdentifier("1.2.392.200149.8.5.5.4"),
    "sex": ObjectIdentifier("1.2.392.200149.8.5.5.3"),
    "address": ObjectIdentifier("1.2.392.200149.8.5.5.5"),
}
ATTRIBUTE_BY_OID = {oid: name for name, oid in ATTRIBUTE_OIDS.items()}

# Private extension of the stand-in: SHA-256 of the paired authentication key (see above).
PAIR_BINDING_OID = ObjectIdentifier("1.3.6.1.4.1.55555.1.1")

SEXES = ("male", "female", "other")


@dataclass(frozen=True)
class BasicAttributes:
    """The four basic attributes as the signature certificate states them."""

    name: str
    birthdate: str  # YYYY-MM-DD
    sex: str
    address: str

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "birthdate": self.birthdate,
            "sex": self.sex,
            "address": self.address,
        }

    def same_person_as(self, other: BasicAttributes) -> bool:
        """Name, birth date and sex agree (an address changes when people move)."""
        return (
            _norm(self.name) == _norm(other.name)
            and self.birthdate == other.birthdate
            and self.sex == other.sex
        )


def _norm(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def der_utf8string(text: str) -> bytes:
    """DER of an ASN.1 UTF8String (the otherName value)."""
    data = text.encode("utf-8")
    return b"\x0c" + der_length(len(data)) + data


def der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def parse_der_utf8string(der: bytes) -> str:
    if len(der) < 2 or der[0] != 0x0C:
        raise ValueError("not a UTF8String")
    first = der[1]
    if first < 0x80:
        length, start = first, 2
    else:
        nbytes = first & 0x7F
        length, start = int.from_bytes(der[2 : 2 + nbytes], "big"), 2 + nbytes
    if start + length != len(der):
        raise ValueError("bad UTF8String length")
    return der[start:].decode("utf-8")


def spki_sha256(cert: x509.Certificate) -> bytes:
    """SHA-256 of the certificate's SubjectPublicKeyInfo (DER)."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def fingerprint(cert_der: bytes) -> str:
    """SHA-256 of the certificate (hex): how the authority's renewal links name certificates.
    It is never stored at the IdP as it is, only under a keyed hash."""
    return hashlib.sha256(cert_der).hexdigest()


def signed_data(origin: str, session_id: str, challenge: str) -> bytes:
    """The exact bytes a card signs for a card session."""
    return f"phr-card-auth-v1\n{origin}\n{session_id}\n{challenge}".encode()
