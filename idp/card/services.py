"""What card sign-in needs besides the database (the verifier, renewal links, the keys derived
from PHR_IDP_DATA_KEY), and the card-verified attributes it keeps: sealed with AES-GCM under a
key of their own, bound to the person id, and indexed for counter staff (idp.card.lookup)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from idp.card.lookup import index_person
from idp.card.models import CardAttributes
from idp.card.profile import BasicAttributes
from idp.card.renewal import RenewalLinks
from idp.card.revocation import ocsp_ttl_setting
from idp.card.verifier_config import NoRenewalLinks, verifier_choice
from idp.card.verify import CardVerifier, verifier_for
from idp.data_keys import CARD_ATTRIBUTES, DataKeys
from phr_core.config import Settings
from phr_core.rotating_aead import RotatingAead


@dataclass
class CardServices:
    """What handling a response needs besides the database; one per app (caches inside)."""

    settings: Settings
    verifier: CardVerifier
    links: RenewalLinks

    @classmethod
    def from_settings(cls, settings: Settings) -> CardServices:
        """In development, with the default trust root, the stand-in authority is created on
        first use (so the IdP works before `phr card init`); in production the configured
        PHR_CARD_TRUST_ROOT must exist."""
        choice = verifier_choice(settings)  # PHR_CARD_VERIFIER; refuses stand-ins in production
        trust_root = str(choice.trust_root)
        if (
            choice.kind == "virtual"
            and not settings.environ.get("PHR_CARD_TRUST_ROOT")
            and not Path(trust_root).exists()
        ):
            # Development only: the stand-in authority is never imported in production.
            from idp.authority_sim.ca import init_authority

            init_authority(settings)
        authority_url = choice.authority_url
        ocsp_ttl = ocsp_ttl_setting(settings.option("PHR_CARD_OCSP_CACHE_SECONDS"))
        verifier = verifier_for(trust_root, authority_url, ocsp_ttl, choice.ocsp_url)
        links = (
            RenewalLinks(authority_url, verifier.trust)
            if authority_url
            else NoRenewalLinks(verifier.trust)
        )
        return cls(settings, verifier, links)

    def binding_key(self, fingerprint: str) -> str:
        # A stable identifier: the same key across data-key rotations (idp.data_keys).
        keys = DataKeys(self.settings.secret("PHR_IDP_DATA_KEY"))
        key = keys.identifier_key("idp/card-binding/v1")
        return hmac.new(key, bytes.fromhex(fingerprint), hashlib.sha256).hexdigest()

    def _attr_aead(self) -> RotatingAead:
        return DataKeys(self.settings.secret("PHR_IDP_DATA_KEY")).aead(CARD_ATTRIBUTES)

    def seal_attributes(self, person_id: str, attrs: BasicAttributes) -> bytes:
        nonce = secrets.token_bytes(12)
        plain = json.dumps(attrs.as_dict(), ensure_ascii=False).encode()
        return b"\x01" + nonce + self._attr_aead().encrypt(nonce, plain, person_id.encode())

    def open_attributes(self, person_id: str, sealed: bytes) -> BasicAttributes:
        if sealed[:1] != b"\x01":
            raise ValueError("unknown attribute sealing version")
        plain = self._attr_aead().decrypt(sealed[1:13], sealed[13:], person_id.encode())
        return BasicAttributes(**json.loads(plain))


def read_attributes(
    db_session: Session, services: CardServices, person_id: str
) -> BasicAttributes | None:
    """The card-verified name, birth date, sex and address of a person (for the municipality
    linkage), decrypted; None when the person never enrolled with a card."""
    row = db_session.get(CardAttributes, person_id)
    return None if row is None else services.open_attributes(person_id, row.sealed)


def store_attributes(
    s: Session, services: CardServices, person_id: str, attrs: BasicAttributes
) -> None:
    """Keep a person's card-verified attributes (sealed) and index them for counter staff. The
    caller commits."""
    row = s.get(CardAttributes, person_id)
    sealed = services.seal_attributes(person_id, attrs)
    if row is None:
        s.add(CardAttributes(person_id=person_id, sealed=sealed, updated_at=datetime.now(UTC)))
    else:
        row.sealed, row.updated_at = sealed, datetime.now(UTC)
    # Counter staff find enrolled people by name and birth date (idp/card/lookup.py).
    index_person(s, services.settings.secret("PHR_IDP_DATA_KEY"), person_id, attrs)
