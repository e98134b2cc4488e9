"""The development authority's revocation status answers: OCSP responses (RFC 6960) and the
CRL, signed by the issuing CA, from the authority's record of what it issued and revoked."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp

OCSP_VALIDITY = timedelta(hours=1)
CRL_VALIDITY = timedelta(days=1)  # J-LIS publishes CRLs daily

REASONS = {r.name: r for r in x509.ReasonFlags}


def ocsp_response(
    request_der: bytes,
    ca: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    entry_of: Callable[[int], dict | None],
) -> bytes:
    """An RFC 6960 response to a DER request, signed by the issuing CA `ca`; `entry_of(serial)`
    is the authority's record of a certificate it issued (None: never issued)."""
    try:
        req = ocsp.load_der_ocsp_request(request_der)
    except ValueError:
        return ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.MALFORMED_REQUEST
        ).public_bytes(serialization.Encoding.DER)
    alg = req.hash_algorithm
    if (req.issuer_name_hash, req.issuer_key_hash) != (
        _name_hash(ca, alg),
        _key_hash(ca, alg),
    ):
        return ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.UNAUTHORIZED
        ).public_bytes(serialization.Encoding.DER)
    now = datetime.now(UTC).replace(microsecond=0)
    entry = entry_of(req.serial_number)
    if entry is None:
        status, rev_time, reason = ocsp.OCSPCertStatus.UNKNOWN, None, None
    elif entry["revoked_at"]:
        status = ocsp.OCSPCertStatus.REVOKED
        rev_time = datetime.fromisoformat(entry["revoked_at"]).replace(microsecond=0)
        reason = REASONS[entry["reason"]]
    else:
        status, rev_time, reason = ocsp.OCSPCertStatus.GOOD, None, None
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            req.issuer_name_hash,
            req.issuer_key_hash,
            req.serial_number,
            req.hash_algorithm,
            status,
            now,
            now + OCSP_VALIDITY,
            rev_time,
            reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca)
    )
    with contextlib.suppress(x509.ExtensionNotFound):
        nonce = req.extensions.get_extension_for_class(x509.OCSPNonce).value
        builder = builder.add_extension(nonce, critical=False)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def crl(ca: x509.Certificate, ca_key: rsa.RSAPrivateKey, certs: dict[str, dict]) -> bytes:
    """The current CRL (DER) of `ca`, with reason codes; `certs` maps serial (hex) → record."""
    now = datetime.now(UTC).replace(microsecond=0)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.subject)
        .last_update(now)
        .next_update(now + CRL_VALIDITY)
        .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
    )
    for serial, entry in certs.items():
        if not entry["revoked_at"]:
            continue
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(serial, 16))
            .revocation_date(datetime.fromisoformat(entry["revoked_at"]))
            .add_extension(x509.CRLReason(REASONS[entry["reason"]]), critical=False)
            .build()
        )
        builder = builder.add_revoked_certificate(revoked)
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _name_hash(ca: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(ca.subject.public_bytes())
    return h.finalize()


def _key_hash(ca: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    # RFC 6960: hash of the BIT STRING value of subjectPublicKey (for RSA, the PKCS#1 key).
    h = hashes.Hash(algorithm)
    h.update(
        ca.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    )
    return h.finalize()
