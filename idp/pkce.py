"""PKCE (RFC 7636), S256 only, required of every client."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
CHALLENGE_RE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def valid_challenge(challenge: str) -> bool:
    return bool(CHALLENGE_RE.match(challenge))


def verify(verifier: str, challenge: str) -> bool:
    if not VERIFIER_RE.match(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)
