"""Renewal links (証明書新旧紐付け情報): which old certificate a renewed one replaces, as the card
authority states it, signed. A link is believed only when its signature verifies under an
issuing CA that a trusted root signed."""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from idp.card.errors import CardError
from idp.card.link_format import LINK_FORMAT, canonical_link_bytes
from idp.card.trust import Fetcher, TrustStore, http_fetch

log = logging.getLogger(__name__)


class RenewalLinks:
    def __init__(self, base_url: str, trust: TrustStore, fetch: Fetcher = http_fetch) -> None:
        self.base_url = base_url.rstrip("/")
        self.trust = trust
        self.fetch = fetch

    def old_fingerprints(self, new_fingerprint: str) -> list[str]:
        """Fingerprints of the certificates `new_fingerprint` renewed (usually zero or one).
        Raises CardError('renewal_check_unavailable') when the authority does not answer, so a
        renewed card is never mistaken for a new person."""
        url = f"{self.base_url}/renewal-links"
        query = json.dumps({"new": new_fingerprint}).encode()
        try:
            doc = json.loads(self.fetch(url, query, "application/json"))
            signer = x509.load_der_x509_certificate(base64.b64decode(doc["signer"]))
            links = doc["links"]
        except Exception:
            log.warning("card: renewal links unavailable")
            raise CardError("renewal_check_unavailable") from None
        if self.trust.anchor_for(signer, datetime.now(UTC)) is None:
            log.warning("card: renewal links signed by an untrusted key ignored")
            raise CardError("renewal_check_unavailable")
        key = signer.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise CardError("renewal_check_unavailable")
        found = []
        for item in links:
            link = item.get("link", {})
            try:
                key.verify(
                    base64.b64decode(item["signature"]),
                    canonical_link_bytes(link),
                    padding.PKCS1v15(),
                    hashes.SHA256(),
                )
            except (InvalidSignature, KeyError, ValueError):
                log.warning("card: a renewal link with a bad signature was ignored")
                continue
            if link.get("format") == LINK_FORMAT and link.get("new") == new_fingerprint:
                found.append(str(link["old"]))
        return found
