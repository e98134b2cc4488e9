"""Verifying what a card signed: one pipeline of named checks, each refusing with its own code.

    parse → not self-signed → chain to a trusted root → validity period → key usage and
    certificate type → signature over the exact bytes → revocation (OCSP, short cache; CRL
    fallback; fail closed when neither answers)

Which CAs are trusted is idp.card.trust; the revocation check is idp.card.revocation.

The signature is RSASSA-PKCS1-v1_5 with SHA-256, as the card computes it. Nothing here logs
or returns a serial number: the verifier hands back the certificate for the caller to map to a
person by keyed hash (see idp.card.mapping), and caches revocation answers by fingerprint.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from idp.card.errors import CardError
from idp.card.profile import (
    ATTRIBUTE_BY_OID,
    AUTH,
    PAIR_BINDING_OID,
    SIGN,
    TYPE_BY_POLICY,
    BasicAttributes,
    parse_der_utf8string,
)
from idp.card.revocation import OCSP_TTL_S, RevocationChecker
from idp.card.trust import CLOCK_SKEW, Fetcher, TrustStore, http_fetch, is_ca, within_validity

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifiedCertificate:
    """A certificate that passed every check, with what the caller needs to map it."""

    kind: str  # AUTH or SIGN
    certificate: x509.Certificate
    der: bytes
    fingerprint: str  # SHA-256 of the DER, hex; keyed-hash it before storing
    issuer: x509.Certificate
    not_after: datetime
    revocation_method: str  # "ocsp" or "crl"

    @property
    def attributes(self) -> BasicAttributes | None:
        return read_attributes(self.certificate) if self.kind == SIGN else None

    @property
    def pair_binding(self) -> bytes | None:
        return read_pair_binding(self.certificate)


def read_attributes(cert: x509.Certificate) -> BasicAttributes | None:
    """The four basic attributes of a signature certificate (None when absent)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    found: dict[str, str] = {}
    for other in san.get_values_for_type(x509.OtherName):
        name = ATTRIBUTE_BY_OID.get(other.type_id)
        if name:
            found[name] = parse_der_utf8string(other.value)
    if set(found) != {"name", "birthdate", "sex", "address"}:
        return None
    return BasicAttributes(**found)


def read_pair_binding(cert: x509.Certificate) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(PAIR_BINDING_OID).value
    except x509.ExtensionNotFound:
        return None
    raw = ext.value if isinstance(ext, x509.UnrecognizedExtension) else b""
    # OCTET STRING of 32 bytes
    if len(raw) == 34 and raw[0] == 0x04 and raw[1] == 32:
        return raw[2:]
    return None


def certificate_kind(cert: x509.Certificate) -> str | None:
    """AUTH or SIGN from the certificate policy; None when it is neither."""
    try:
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return None
    kinds = {
        TYPE_BY_POLICY[p.policy_identifier]
        for p in policies
        if p.policy_identifier in TYPE_BY_POLICY
    }
    return kinds.pop() if len(kinds) == 1 else None


def _check_key_usage(cert: x509.Certificate, kind: str) -> None:
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise CardError("wrong_key_usage") from None
    if not ku.digital_signature or ku.key_cert_sign or ku.crl_sign or is_ca(cert):
        raise CardError("wrong_key_usage")
    if kind == SIGN and not ku.content_commitment:
        raise CardError("wrong_key_usage")


@dataclass(frozen=True)
class _Checked:
    """What never changes for one certificate's exact bytes under one trust store: the parsed
    certificate, its trusted issuer, its type (key usage already checked) and its public key."""

    cert: x509.Certificate
    issuer: x509.Certificate
    kind: str
    key: rsa.RSAPublicKey
    not_before: datetime
    not_after: datetime


class CardVerifier:
    """Verify a card's certificate and its signature over given bytes. Thread-safe; keep one
    per process (see `verifier_for`) so the caches are shared.

    Two caches keep a busy IdP fast without skipping a check that can change: the OCSP answers
    (seconds, see RevocationChecker) and, per certificate fingerprint, the results that depend
    only on the certificate's bytes and the trust store (parsing, chain signature, key usage,
    type). The validity period, the signature over the challenge and the revocation status are
    checked on every call."""

    def __init__(
        self,
        trust: TrustStore,
        revocation: RevocationChecker | None = None,
        static_cache_size: int = 20_000,
    ) -> None:
        self.trust = trust
        self.revocation = revocation or RevocationChecker(trust.fetch)
        self.static_cache_size = static_cache_size
        self._static: OrderedDict[str, _Checked] = OrderedDict()
        self._lock = threading.Lock()

    def verify(
        self,
        cert_der: bytes,
        signature: bytes,
        data: bytes,
        expected: str = AUTH,
        now: datetime | None = None,
    ) -> VerifiedCertificate:
        """The pipeline of the module docstring; CardError with the first failing check."""
        now = now or datetime.now(UTC)
        fp = hashlib.sha256(cert_der).hexdigest()
        checked = self._static_checks(fp, cert_der, now)
        if now < checked.not_before - CLOCK_SKEW:
            raise CardError("certificate_not_yet_valid")
        if now > checked.not_after:
            raise CardError("certificate_expired")
        if not within_validity(checked.issuer, now):
            raise CardError("unknown_ca")
        if checked.kind != expected:
            raise CardError("wrong_certificate_type")
        try:
            checked.key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise CardError("bad_signature") from None
        method = self.revocation.check(checked.cert, checked.issuer, fp, now)
        return VerifiedCertificate(
            kind=checked.kind,
            certificate=checked.cert,
            der=cert_der,
            fingerprint=fp,
            issuer=checked.issuer,
            not_after=checked.not_after,
            revocation_method=method,
        )

    def _static_checks(self, fp: str, cert_der: bytes, now: datetime) -> _Checked:
        with self._lock:
            hit = self._static.get(fp)
            if hit is not None:
                self._static.move_to_end(fp)
                return hit
        cert = _parse(cert_der)
        try:
            issuer = self.trust.issuer_of(cert, now)
        except CardError:
            if _self_signed(cert):
                raise CardError("self_signed") from None
            raise
        if issuer == cert:  # a trusted root posted as if it were a card certificate
            raise CardError("self_signed")
        not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
        # Validity before key usage, so an expired certificate says "expired" first.
        if now < not_before - CLOCK_SKEW:
            raise CardError("certificate_not_yet_valid")
        if now > not_after:
            raise CardError("certificate_expired")
        kind = certificate_kind(cert)
        _check_key_usage(cert, kind or AUTH)
        if kind is None:
            raise CardError("wrong_certificate_type")
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise CardError("certificate_unreadable")
        checked = _Checked(cert, issuer, kind, key, not_before, not_after)
        with self._lock:
            self._static[fp] = checked
            while len(self._static) > self.static_cache_size:
                self._static.popitem(last=False)
        return checked


def _parse(cert_der: bytes) -> x509.Certificate:
    try:
        cert = x509.load_der_x509_certificate(cert_der)
        cert.extensions  # noqa: B018  (parse them now: a broken extension is a broken cert)
    except Exception:
        raise CardError("certificate_unreadable") from None
    return cert


def _self_signed(cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


_VERIFIERS: dict[tuple[str, float, tuple[str, ...], float, str], CardVerifier] = {}
_VERIFIERS_LOCK = threading.Lock()


def fixed_ocsp(fetch: Fetcher, ocsp_url: str) -> Fetcher:
    """`fetch`, but every OCSP request goes to `ocsp_url` (a responder assigned to this verifier,
    as J-LIS assigns one to a 利用者証明検証者) instead of the certificate's own."""

    def fetch_fixed(url: str, body: bytes | None = None, content_type: str | None = None) -> bytes:
        return fetch(
            ocsp_url if content_type == "application/ocsp-request" else url, body, content_type
        )

    return fetch_fixed


def verifier_for(
    trust_root: str | Path,
    authority_url: str | None = None,
    ocsp_ttl: float = OCSP_TTL_S,
    ocsp_url: str | None = None,
) -> CardVerifier:
    """The process's verifier for a trust-root file (reloaded when the file changes); issuing
    CA certificates may be fetched from under `authority_url`; OCSP "good" answers reused for
    `ocsp_ttl` seconds; OCSP asked at `ocsp_url` when given."""
    path = Path(trust_root)
    try:
        mtime = path.stat().st_mtime
    except OSError:
        raise FileNotFoundError(
            f"card trust root {path} does not exist; set PHR_CARD_TRUST_ROOT "
            "(in development, the card authority stand-in creates it)"
        ) from None
    prefixes = (authority_url.rstrip("/") + "/",) if authority_url else ()
    key = (str(path.resolve()), mtime, prefixes, ocsp_ttl, ocsp_url or "")
    with _VERIFIERS_LOCK:
        v = _VERIFIERS.get(key)
        if v is None:
            fetch = fixed_ocsp(http_fetch, ocsp_url) if ocsp_url else http_fetch
            trust = TrustStore.from_pem_file(path, fetch, ca_issuer_prefixes=prefixes)
            v = CardVerifier(trust, RevocationChecker(trust.fetch, ocsp_ttl=ocsp_ttl))
            _VERIFIERS.clear()
            _VERIFIERS[key] = v
        return v
