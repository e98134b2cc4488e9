"""phr_core.tokens: malformed tokens are refused as invalid, never a crash."""

from __future__ import annotations

import base64

import pytest

from phr_core.tokens import AccessTokenVerifier, InvalidToken, JwksCache


def _seg(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        _seg(b"[1, 2]") + "." + _seg(b"{}") + ".sig",  # header is JSON, but not an object
        _seg(b"\xff\xfe") + "." + _seg(b"{}") + ".sig",
        _seg(b'{"alg": "none", "typ": "at+jwt"}') + "." + _seg(b"{}") + ".",
    ],
)
def test_malformed_tokens_are_invalid(token: str) -> None:
    verifier = AccessTokenVerifier(
        "https://idp.example", "https://fhir.example", JwksCache("http://127.0.0.1:9/jwks")
    )
    with pytest.raises(InvalidToken):
        verifier.verify(token)
