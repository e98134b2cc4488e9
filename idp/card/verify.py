"""Verifying what a card signed: one pipeline of named checks, each refusing with its own code.

    parse → not self-signed → chain to a trusted root → validity period → key usage and
    certificate type → signature over the exact bytes → revocation (OCSP, short cache; CRL
    fallback; fail closed when neither answers)

The signature is RSASSA-PKCS1-v1_5 with SHA-256, as the card computes it. Nothing here logs
or returns a serial number: the verifier hands back the certificate for the caller to map to a
person by keyed hash (see idp.card.sessions), and caches revocation answers by fingerprint.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from idp.card.errors import CardError
from idp.card.profile import (
    ATTRIBUTE_BY_OID,
    AUTH,
    PAIR_BINDING_OID,
    SIGN,
    TYPE_BY_POLICY,
    BasicAttributes,
)

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(minutes=5)
# How long a "good" answer is reused, per process: a card revoked at the authority still signs
# in for at most this long. PHR_CARD_OCSP_CACHE_SECONDS sets it (0 asks every time).
OCSP_TTL_S = 10.0
MAX_OCSP_TTL_S = 60.0
CRL_TTL_S = 300.0
OCSP_MAX_AGE = timedelta(hours=1)  # for answers without nextUpdate
NETWORK_TIMEOUT_S = 3.0

# fetch(url, body or None for GET, content type) -> response body; raises on any failure.
Fetcher = Callable[[str, bytes | None, str | None], bytes]


def http_fetch(url: str, body: bytes | None = None, content_type: str | None = None) -> bytes:
    """Plain HTTP(S) GET or POST with a short timeout; any non-200 answer raises."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("only http(s) URLs are fetched")
    # S310: http(s) only (checked above); the URLs come from certificates a trusted CA signed (OCSP,
    # CRL) or lie under the configured ca_issuer_prefixes
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")  # noqa: S310 - see above
    if content_type:
        req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=NETWORK_TIMEOUT_S) as resp:  # noqa: S310 - as above
        if resp.status != 200:
            raise OSError(f"HTTP {resp.status}")
        return resp.read()


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
    from idp.card.profile import parse_der_utf8string

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


def _uri_of(cert: x509.Certificate, method: x509.ObjectIdentifier) -> str | None:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    for desc in aia:
        if desc.access_method == method and isinstance(
            desc.access_location, x509.UniformResourceIdentifier
        ):
            return desc.access_location.value
    return None


def _crl_uri(cert: x509.Certificate) -> str | None:
    try:
        dps = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return None
    for dp in dps:
        for name in dp.full_name or ():
            if isinstance(name, x509.UniformResourceIdentifier):
                return name.value
    return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _within_validity(cert: x509.Certificate, now: datetime) -> bool:
    return cert.not_valid_before_utc - CLOCK_SKEW <= now <= cert.not_valid_after_utc


class TrustStore:
    """The trusted roots (from PHR_CARD_TRUST_ROOT) and the issuing CAs verified against them.

    An issuing CA is taken from the trust file (any non-self-signed certificate in it) or fetched
    once from the leaf's AIA caIssuers URL; either way it is accepted only when a trusted root
    signed it, it is a CA and it is within its validity period. The leaf is not trusted yet when
    its caIssuers URL is read, so only URLs under `ca_issuer_prefixes` (the card authority's
    own) are ever fetched: a posted certificate cannot make the IdP request other addresses."""

    def __init__(
        self,
        anchors: list[x509.Certificate],
        intermediates: list[x509.Certificate] = (),  # type: ignore[assignment]
        fetch: Fetcher = http_fetch,
        ca_issuer_prefixes: tuple[str, ...] = (),
    ) -> None:
        if not anchors:
            raise ValueError("no trusted root certificate")
        self.anchors = list(anchors)
        self.fetch = fetch
        self.ca_issuer_prefixes = tuple(ca_issuer_prefixes)
        self._by_subject: dict[bytes, list[x509.Certificate]] = {}
        self._lock = threading.Lock()
        for a in self.anchors:
            self._by_subject.setdefault(a.subject.public_bytes(), []).append(a)
        for c in intermediates:
            if self._anchor_for(c, datetime.now(UTC)) is not None:
                self._by_subject.setdefault(c.subject.public_bytes(), []).append(c)
        self._known: tuple[x509.Certificate, ...] = tuple(
            c for group in self._by_subject.values() for c in group
        )

    @classmethod
    def from_pem_file(
        cls,
        path: str | Path,
        fetch: Fetcher = http_fetch,
        ca_issuer_prefixes: tuple[str, ...] = (),
    ) -> TrustStore:
        certs = x509.load_pem_x509_certificates(Path(path).read_bytes())
        anchors = [c for c in certs if c.issuer == c.subject]
        others = [c for c in certs if c.issuer != c.subject]
        return cls(anchors, others, fetch, ca_issuer_prefixes)

    def is_anchor(self, cert: x509.Certificate) -> bool:
        return any(cert == a for a in self.anchors)

    def _anchor_for(self, ca: x509.Certificate, now: datetime) -> x509.Certificate | None:
        if not _is_ca(ca) or not _within_validity(ca, now):
            return None
        for a in self.anchors:
            try:
                ca.verify_directly_issued_by(a)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return a
        return None

    def issuer_of(self, cert: x509.Certificate, now: datetime) -> x509.Certificate:
        """The trusted CA that signed `cert`; CardError('unknown_ca') when there is none."""
        # Try every known CA (a handful): the name comparison inside verify_directly_issued_by
        # is cheaper than building Python Name objects for a lookup.
        for cand in self._known:
            try:
                cert.verify_directly_issued_by(cand)
            except (ValueError, TypeError, InvalidSignature):
                continue
            if not _within_validity(cand, now):
                continue
            return cand
        fetched = self._fetch_issuer(cert, now)
        if fetched is not None:
            return fetched
        raise CardError("unknown_ca")

    def _fetch_issuer(self, cert: x509.Certificate, now: datetime) -> x509.Certificate | None:
        url = _uri_of(cert, AuthorityInformationAccessOID.CA_ISSUERS)
        if not url or not any(url.startswith(p) for p in self.ca_issuer_prefixes):
            return None
        try:
            ca = x509.load_der_x509_certificate(self.fetch(url, None, None))
        except Exception:  # unreachable or garbage: the chain cannot be built
            log.info("card: issuing CA certificate could not be fetched")
            return None
        if ca.subject != cert.issuer or self._anchor_for(ca, now) is None:
            return None
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            return None
        with self._lock:
            known = self._by_subject.setdefault(ca.subject.public_bytes(), [])
            if ca not in known:
                known.append(ca)
                # intermediates first: card certificates are issued by them
                self._known = (ca, *self._known)
        return ca


class RevocationChecker:
    """OCSP first (answers reused for at most `ocsp_ttl` seconds), the CRL when the responder
    does not answer, and a refusal when neither does."""

    def __init__(
        self,
        fetch: Fetcher = http_fetch,
        ocsp_ttl: float = OCSP_TTL_S,
        crl_ttl: float = CRL_TTL_S,
        max_entries: int = 100_000,
    ) -> None:
        self.fetch = fetch
        self.ocsp_ttl = ocsp_ttl
        self.crl_ttl = crl_ttl
        self.max_entries = max_entries
        # fingerprint -> (expires at (monotonic), status, reason)
        self._ocsp: OrderedDict[str, tuple[float, str, str | None]] = OrderedDict()
        self._crl: dict[str, tuple[float, x509.CertificateRevocationList]] = {}
        self._lock = threading.Lock()

    def check(
        self, cert: x509.Certificate, issuer: x509.Certificate, fingerprint: str, now: datetime
    ) -> str:
        """'ocsp' or 'crl' (which answered); raises CardError when revoked or unknowable."""
        cached = self._cached(fingerprint)
        if cached is not None:
            _raise_if_revoked(cached[0], cached[1])
            return "ocsp"
        try:
            status, reason, good_until = self._ask_ocsp(cert, issuer, now)
        except _NoAnswer:
            status = None
        if status is not None:
            self._remember(fingerprint, status, reason, good_until)
            _raise_if_revoked(status, reason)
            return "ocsp"
        try:
            status, reason = self._ask_crl(cert, issuer, now)
        except _NoAnswer:
            log.warning("card: revocation status unavailable (OCSP and CRL); refusing")
            raise CardError("revocation_unavailable") from None
        _raise_if_revoked(status, reason)
        return "crl"

    def clear(self) -> None:
        with self._lock:
            self._ocsp.clear()
            self._crl.clear()

    def _cached(self, fingerprint: str) -> tuple[str, str | None] | None:
        with self._lock:
            hit = self._ocsp.get(fingerprint)
            if hit is None:
                return None
            if hit[0] < time.monotonic():
                del self._ocsp[fingerprint]
                return None
            return hit[1], hit[2]

    def _remember(
        self, fingerprint: str, status: str, reason: str | None, good_until: float
    ) -> None:
        with self._lock:
            self._ocsp[fingerprint] = (good_until, status, reason)
            self._ocsp.move_to_end(fingerprint)
            while len(self._ocsp) > self.max_entries:
                self._ocsp.popitem(last=False)

    def _ask_ocsp(
        self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> tuple[str, str | None, float]:
        url = _uri_of(cert, AuthorityInformationAccessOID.OCSP)
        if not url:
            raise _NoAnswer
        # S303: SHA-1 only names the certificate in the OCSP CertID (what RFC 5019 responders
        # expect); no signature relies on it
        req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()  # noqa: S303 - see above
        try:
            raw = self.fetch(url, req.public_bytes(_DER), "application/ocsp-request")
            resp = ocsp.load_der_ocsp_response(raw)
        except Exception:
            log.info("card: OCSP responder did not answer")
            raise _NoAnswer from None
        if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            raise _NoAnswer
        if not _ocsp_signed_by(resp, issuer):
            log.warning("card: OCSP response with a bad signature ignored")
            raise _NoAnswer
        if (
            resp.serial_number != cert.serial_number
            or resp.issuer_key_hash != req.issuer_key_hash
            or resp.issuer_name_hash != req.issuer_name_hash
        ):
            raise _NoAnswer
        if resp.this_update_utc > now + CLOCK_SKEW:
            raise _NoAnswer
        if resp.next_update_utc is None and resp.this_update_utc < now - OCSP_MAX_AGE:
            raise _NoAnswer  # an old answer without an end date: possibly replayed
        mono = time.monotonic()
        good_until = mono + self.ocsp_ttl
        if resp.next_update_utc is not None:
            if resp.next_update_utc < now - CLOCK_SKEW:
                raise _NoAnswer  # stale answer
            good_until = min(good_until, mono + (resp.next_update_utc - now).total_seconds())
        if resp.certificate_status == ocsp.OCSPCertStatus.GOOD:
            return "good", None, good_until
        if resp.certificate_status == ocsp.OCSPCertStatus.REVOKED:
            reason = resp.revocation_reason.name if resp.revocation_reason else None
            return "revoked", reason, good_until
        # UNKNOWN: the responder does not know this certificate. Fail closed, never "good".
        return "unknown", None, mono + 5

    def _ask_crl(
        self, cert: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> tuple[str, str | None]:
        url = _crl_uri(cert)
        if not url:
            raise _NoAnswer
        crl = self._crl_for(url, issuer, now)
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is None:
            return "good", None
        reason = None
        with contextlib.suppress(x509.ExtensionNotFound):
            reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
        return "revoked", reason

    def _crl_for(
        self, url: str, issuer: x509.Certificate, now: datetime
    ) -> x509.CertificateRevocationList:
        with self._lock:
            hit = self._crl.get(url)
        if hit is not None and hit[0] >= time.monotonic():
            return hit[1]
        try:
            crl = x509.load_der_x509_crl(self.fetch(url, None, None))
        except Exception:
            log.info("card: CRL could not be fetched")
            raise _NoAnswer from None
        if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            log.warning("card: CRL with a bad signature ignored")
            raise _NoAnswer
        if crl.next_update_utc is not None and crl.next_update_utc < now - CLOCK_SKEW:
            raise _NoAnswer
        ttl = self.crl_ttl
        if crl.next_update_utc is not None:
            ttl = min(ttl, (crl.next_update_utc - now).total_seconds())
        with self._lock:
            self._crl[url] = (time.monotonic() + ttl, crl)
        return crl


class _NoAnswer(Exception):
    pass


from cryptography.hazmat.primitives.serialization import Encoding as _Encoding  # noqa: E402

_DER = _Encoding.DER


def _ocsp_signed_by(resp: ocsp.OCSPResponse, issuer: x509.Certificate) -> bool:
    """The response is signed by the issuing CA itself, or by a responder certificate that CA
    issued for OCSP signing (RFC 6960 §4.2.2.2)."""
    signer = issuer
    for delegated in resp.certificates:
        try:
            delegated.verify_directly_issued_by(issuer)
            eku = delegated.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            continue
        if ExtendedKeyUsageOID.OCSP_SIGNING in eku:
            signer = delegated
            break
    key = signer.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or resp.signature_hash_algorithm is None:
        return False
    try:
        key.verify(
            resp.signature,
            resp.tbs_response_bytes,
            padding.PKCS1v15(),
            resp.signature_hash_algorithm,
        )
    except InvalidSignature:
        return False
    return True


def _raise_if_revoked(status: str, reason: str | None) -> None:
    if status == "good":
        return
    if status == "revoked":
        raise CardError(
            "certificate_superseded" if reason == "superseded" else "certificate_revoked"
        )
    raise CardError("revocation_unavailable")


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
    if not ku.digital_signature or ku.key_cert_sign or ku.crl_sign or _is_ca(cert):
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
        if not _within_validity(checked.issuer, now):
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


def ocsp_ttl_setting(text: str) -> float:
    """PHR_CARD_OCSP_CACHE_SECONDS as seconds (0 to MAX_OCSP_TTL_S)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_OCSP_TTL_S:
        raise ValueError(
            f"PHR_CARD_OCSP_CACHE_SECONDS={text!r} must be a number of seconds, 0 to "
            f"{MAX_OCSP_TTL_S:g}"
        )
    return value


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
