"""Finding a card-enrolled person by the name and birth date on their card, for counter staff.

The attributes are stored only AES-GCM encrypted (random nonce), so they cannot be searched.
Beside them each person gets one blind-index key: HMAC-SHA256 (key derived from
PHR_IDP_DATA_KEY) of the NFKC-normalized name without spaces and the birth date. A database
leak without the data key reveals nothing; people sharing a name and birth date share a key,
and staff then tell them apart by the address (decrypted for those few only)."""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.card.models import CardAttributes, PersonLookup
from idp.card.profile import BasicAttributes
from phr_core.secrets import derive_key


def normalize(text: str) -> str:
    """Full-/half-width and spacing differences do not matter (as in same_person_as)."""
    return "".join(unicodedata.normalize("NFKC", text).split()).casefold()


def lookup_key(data_key: str, name: str, birthdate: str) -> str:
    key = derive_key(data_key, "idp/person-lookup/v1")
    message = f"{normalize(name)}\n{birthdate.strip()}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def index_person(s: Session, data_key: str, person_id: str, attrs: BasicAttributes) -> None:
    """Record (or update) the person's blind-index key; called wherever attributes are stored."""
    key = lookup_key(data_key, attrs.name, attrs.birthdate)
    row = s.get(PersonLookup, person_id)
    if row is None:
        s.add(PersonLookup(person_id=person_id, lookup_key=key))
    else:
        row.lookup_key = key


def candidates(s: Session, data_key: str, name: str, birthdate: str) -> list[str]:
    """Internal ids of the enrolled people with this name and birth date."""
    key = lookup_key(data_key, name, birthdate)
    return list(s.scalars(select(PersonLookup.person_id).where(PersonLookup.lookup_key == key)))


OpenAttributes = Callable[[str, bytes], BasicAttributes]


def reindex(s: Session, data_key: str, open_attributes: OpenAttributes) -> int:
    """Index every person with stored attributes (people enrolled before the index existed);
    `open_attributes(person_id, sealed)` decrypts. Returns how many were indexed."""
    count = 0
    for row in s.scalars(select(CardAttributes)):
        index_person(s, data_key, row.person_id, open_attributes(row.person_id, row.sealed))
        count += 1
    return count
