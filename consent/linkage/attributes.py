"""The card-verified attributes a link request carries to the city (name, birth date, sex,
address): checked on the way in, sealed at rest until the city answers."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from datetime import date

from cryptography.exceptions import InvalidTag

from consent.records import ConsentError
from phr_core.rotating_aead import RotatingAead

# The card's signature-certificate attributes, named as the IdP's card profile and OpenID
# Connect name them (`birthdate` YYYY-MM-DD); `birth_date` is accepted on input too.
ATTRIBUTES = ("name", "birthdate", "sex", "address")


class AttributeBox:
    """AES-256-GCM for the card-verified attributes of pending link requests. The key is derived
    from the service's secret for this one purpose; the request id is the associated data, so
    a ciphertext cannot be moved to another request."""

    def __init__(self, key: bytes | RotatingAead) -> None:
        # Several keys, newest first, while PHR_CONSENT_SECRET_KEY is rotated.
        self._aead = key if isinstance(key, RotatingAead) else RotatingAead([key])

    def seal(self, request_id: str, attributes: Mapping[str, str]) -> str:
        nonce = os.urandom(12)
        data = json.dumps(dict(attributes), ensure_ascii=False).encode("utf-8")
        sealed = self._aead.encrypt(nonce, data, request_id.encode("ascii"))
        return base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, request_id: str, token: str) -> dict[str, str]:
        raw = base64.b64decode(token)
        try:
            data = self._aead.decrypt(raw[:12], raw[12:], request_id.encode("ascii"))
        except InvalidTag:
            raise ConsentError("the request's attributes cannot be decrypted") from None
        return json.loads(data)

    def resealed(self, request_id: str, token: str) -> str | None:
        """`token` sealed under the newest key, or None when it already is. ConsentError when
        no key opens it."""
        raw = base64.b64decode(token)
        try:
            if not self._aead.needs_reseal(raw[:12], raw[12:], request_id.encode("ascii")):
                return None
        except InvalidTag:
            raise ConsentError("the request's attributes cannot be decrypted") from None
        return self.seal(request_id, self.open(request_id, token))


def check_attributes(attributes: Mapping[str, object]) -> dict[str, str]:
    attributes = birthdate_alias(attributes)
    missing = [a for a in ATTRIBUTES if not isinstance(attributes.get(a), str) or not attributes[a]]
    if missing:
        raise ConsentError(f"card-verified attributes missing: {', '.join(missing)}")
    try:
        date.fromisoformat(str(attributes["birthdate"]))
    except ValueError:
        raise ConsentError("birthdate must be YYYY-MM-DD") from None
    return {a: str(attributes[a]) for a in ATTRIBUTES}


def birthdate_alias(item: Mapping[str, object]) -> Mapping[str, object]:
    if "birthdate" not in item and "birth_date" in item:
        return {**item, "birthdate": item["birth_date"]}
    return item
