"""Which certificate authorities a card certificate may chain to: the trusted roots of
PHR_CARD_TRUST_ROOT and the issuing CAs they signed (from the same file, or fetched once from
the authority's own caIssuers URL), plus the small X.509 helpers and the HTTP fetch the card
checks share."""

from __future__ import annotations

import logging
import threading
import urllib.request
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import AuthorityInformationAccessOID

from idp.card.errors import CardError

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(minutes=5)
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


def aia_uri(cert: x509.Certificate, method: x509.ObjectIdentifier) -> str | None:
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


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def within_validity(cert: x509.Certificate, now: datetime) -> bool:
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
        intermediates: Sequence[x509.Certificate] = (),
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
            if self.anchor_for(c, datetime.now(UTC)) is not None:
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

    def anchor_for(self, ca: x509.Certificate, now: datetime) -> x509.Certificate | None:
        if not is_ca(ca) or not within_validity(ca, now):
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
            if not within_validity(cand, now):
                continue
            return cand
        fetched = self._fetch_issuer(cert, now)
        if fetched is not None:
            return fetched
        raise CardError("unknown_ca")

    def _fetch_issuer(self, cert: x509.Certificate, now: datetime) -> x509.Certificate | None:
        url = aia_uri(cert, AuthorityInformationAccessOID.CA_ISSUERS)
        if not url or not any(url.startswith(p) for p in self.ca_issuer_prefixes):
            return None
        try:
            ca = x509.load_der_x509_certificate(self.fetch(url, None, None))
        except Exception:  # unreachable or garbage: the chain cannot be built
            log.info("card: issuing CA certificate could not be fetched")
            return None
        if ca.subject != cert.issuer or self.anchor_for(ca, now) is None:
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
