"""Whether a card certificate is revoked: OCSP first (a short per-process cache of answers),
the authority's CRL when the responder does not answer, and a refusal when neither does (fail
closed). Answers are accepted only when signed by the issuing CA or its delegated responder."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

from idp.card.errors import CardError
from idp.card.trust import CLOCK_SKEW, Fetcher, aia_uri, http_fetch

log = logging.getLogger(__name__)

# How long a "good" answer is reused, per process: a card revoked at the authority still signs
# in for at most this long. PHR_CARD_OCSP_CACHE_SECONDS sets it (0 asks every time).
OCSP_TTL_S = 10.0
MAX_OCSP_TTL_S = 60.0
CRL_TTL_S = 300.0
OCSP_MAX_AGE = timedelta(hours=1)  # for answers without nextUpdate


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
        url = aia_uri(cert, AuthorityInformationAccessOID.OCSP)
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
        if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]  # public_key() is typed wider than CRL issuers' keys; a key that cannot sign raises, as before
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


_DER = Encoding.DER


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
