"""Signed consent receipts: the receipt (consent.receipts) as a compact JWS (ES256) signed by
the consent service's receipt key, so a person can show a third party exactly what they agreed
to and when, and anyone can check it with any JOSE library and the published JWK Set
(phr_core.receipt_keys, docs/receipts.md).

Compact serialization, not JSON: it is one line of text every JOSE and JWT library verifies in
one call (joserfc, python-jose, PyJWT, jose in JavaScript). The payload is the receipt itself
plus `iss` (the consent service) and `iat` (when this copy was signed).

`verify` is stricter than a library's default, so that *every* changed byte is refused: each
part must be canonical base64url (a library may ignore the spare low bits of the last
character) and the header must name our `alg` and `typ` and a `kid` the key set holds.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import time
from collections.abc import Mapping
from typing import Any, cast

from joserfc import jws
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import ECKey, KeySet, KeySetSerialization
from sqlalchemy.orm import Session

from consent import receipts, records
from consent.records import ConsentView
from phr_core import receipt_keys
from phr_core.config import Settings

TYP = "consent-receipt+jwt"
MEDIA_TYPE = "application/jose"  # RFC 7515 section 9.2.1: a compact JWS
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


class ReceiptError(ValueError):
    """Why a receipt does not verify; `reason` is one of the constants below."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


MALFORMED = "malformed"
WRONG_ALGORITHM = "wrong_algorithm"
UNKNOWN_KID = "unknown_kid"
BAD_SIGNATURE = "bad_signature"


def sign(receipt: Mapping[str, object], settings: Settings, *, now: float | None = None) -> str:
    """The receipt as a compact JWS under the service's current receipt key."""
    key = receipt_keys.signing_key(settings)
    claims = {
        **receipt,
        "iss": settings.urls["consent"],
        "iat": int(time.time() if now is None else now),
    }
    header = {"alg": receipt_keys.ALG, "kid": key.kid, "typ": TYP}
    payload = json.dumps(claims, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return jws.serialize_compact(header, payload, key, algorithms=[receipt_keys.ALG])


def signed_receipt(
    s: Session, consent_id: str, settings: Settings, *, version: int | None = None
) -> tuple[ConsentView, str] | None:
    """The consent (at `version`, else its current one) and its signed receipt, or None."""
    view = records.get(s, consent_id, version=version)
    if view is None:
        return None
    body = receipts.receipt(view, records.history(s, consent_id), settings)
    return view, sign(body, settings)


def filename(view: ConsentView) -> str:
    return f"consent-receipt-{view.record.id}-v{view.version.version}.jws"


def _b64decode(part: str, what: str) -> bytes:
    """Strict base64url: our alphabet, no padding, and the encoding must be the canonical one."""
    if not _B64URL.fullmatch(part):
        raise ReceiptError(MALFORMED, f"the {what} is not base64url")
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise ReceiptError(MALFORMED, f"the {what} is not base64url") from None
    if base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") != part:
        raise ReceiptError(MALFORMED, f"the {what} has been altered (not canonical base64url)")
    return raw


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeError, ValueError):
        raise ReceiptError(MALFORMED, f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise ReceiptError(MALFORMED, f"the {what} is not a JSON object")
    return value


def header_of(token: str) -> dict[str, Any]:
    """The protected header, unchecked (to say which key a receipt names)."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ReceiptError(MALFORMED, "not a compact JWS (three dot-separated parts)")
    return _json_object(_b64decode(parts[0], "header"), "header")


def verify(token: str, jwks: Mapping[str, Any]) -> dict[str, Any]:
    """The receipt inside `token` once its signature checks out against `jwks`; raises
    ReceiptError saying why not."""
    token = token.strip()
    header = header_of(token)
    for part, what in zip(token.split(".")[1:], ("payload", "signature"), strict=True):
        _b64decode(part, what)
    if header.get("alg") != receipt_keys.ALG:
        raise ReceiptError(
            WRONG_ALGORITHM,
            f"signed with alg {header.get('alg')!r}; receipts use {receipt_keys.ALG}",
        )
    if header.get("typ") != TYP:
        raise ReceiptError(MALFORMED, f"typ is {header.get('typ')!r}, not {TYP!r}")
    kid = header.get("kid")
    key = _key(jwks, kid)
    try:
        obj = jws.deserialize_compact(token, key, algorithms=[receipt_keys.ALG])
    except BadSignatureError:
        raise ReceiptError(
            BAD_SIGNATURE,
            f"the signature does not match the content (altered, or not signed by key {kid})",
        ) from None
    except (JoseError, ValueError) as exc:
        raise ReceiptError(MALFORMED, f"not a valid JWS ({type(exc).__name__})") from None
    claims = _json_object(obj.payload, "payload")
    if not isinstance(claims.get("receipt_id"), str):
        raise ReceiptError(MALFORMED, "the payload is not a consent receipt (no receipt_id)")
    return claims


def _key(jwks: Mapping[str, Any], kid: object) -> ECKey:
    if not isinstance(kid, str) or not kid:
        raise ReceiptError(UNKNOWN_KID, "the receipt names no key (kid)")
    try:
        keys = _key_set(json.dumps(jwks, sort_keys=True))
    except (JoseError, ValueError, TypeError, KeyError):
        raise ReceiptError(MALFORMED, "the verifying key set is not a JWK Set") from None
    for key in keys.keys:
        if key.kid == kid and isinstance(key, ECKey) and key.get("use", "sig") == "sig":
            return key
    raise ReceiptError(UNKNOWN_KID, f"key {kid!r} is not among the published receipt keys")


@functools.lru_cache(maxsize=8)
def _key_set(text: str) -> KeySet:
    """Imported once per key set: a verifier checking many receipts checks each key once."""
    return KeySet.import_key_set(cast(KeySetSerialization, json.loads(text)))


def facts(claims: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What a receipt says, as (label, value) lines for a terminal; not the person's
    identifier (operators' commands print no personal data)."""
    purposes = claims.get("purposes") or [{}]
    first = purposes[0] if isinstance(purposes, list) and purposes else {}
    third = first.get("third_party") if isinstance(first, dict) else None
    events = claims.get("events") or []
    period = claims.get("period") or {}
    lines = [
        ("receipt", str(claims.get("receipt_id"))),
        ("consent", f"{claims.get('record_id')} version {claims.get('record_version')}"),
        ("issued by", str(claims.get("iss"))),
        ("signed at", _time(claims.get("iat"))),
        ("status", str(claims.get("status"))),
        ("recipient", third.get("name", "") if isinstance(third, dict) else "the PHR platform"),
        ("purpose", str(first.get("purpose", "")) if isinstance(first, dict) else ""),
        (
            "data",
            ", ".join(map(str, first.get("pii_information", [])))
            if isinstance(first, dict)
            else "",
        ),
        ("period", f"{period.get('start') or '-'} .. {period.get('end') or '-'}"),
    ]
    for e in events if isinstance(events, list) else []:
        if isinstance(e, dict):
            lines.append(("event", f"{e.get('time')} {e.get('type')} (version {e.get('version')})"))
    return lines


def _time(value: object) -> str:
    if not isinstance(value, int):
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))
