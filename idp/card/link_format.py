"""The wire format of renewal links (証明書新旧紐付け情報): what the card authority signs when a
renewed certificate replaces an old one. The IdP reads links in this format (idp.card.renewal);
the development authority (idp.authority_sim) writes them in it.

A link is `{"format", "old", "new", "issued_at"}` (certificate fingerprints, SHA-256 hex of the
DER), signed with RSA PKCS#1 v1.5 / SHA-256 over `canonical_link_bytes(link)`; the authority
answers `POST /renewal-links` with `{"links": [{"link", "signature"}], "signer": base64 DER}`.
"""

from __future__ import annotations

import json
from datetime import datetime

LINK_FORMAT = "phr-card-renewal-link/v1"


def new_link(old_fingerprint: str, new_fingerprint: str, issued_at: datetime) -> dict:
    """An unsigned link saying `new_fingerprint` renews `old_fingerprint`."""
    return {
        "format": LINK_FORMAT,
        "old": old_fingerprint,
        "new": new_fingerprint,
        "issued_at": issued_at.isoformat(timespec="seconds"),
    }


def canonical_link_bytes(link: dict) -> bytes:
    """The exact bytes a renewal link's signature covers."""
    return json.dumps(link, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
