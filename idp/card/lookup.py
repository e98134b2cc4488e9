"""Finding a card-enrolled person by the name and birth date on their card, for counter staff.

The attributes are stored only AES-GCM encrypted (random nonce), so they cannot be searched.
Beside them each person gets one blind-index key: HMAC-SHA256 (key derived from
PHR_IDP_DATA_KEY) of the NFKC-normalized name without spaces and the birth date. A database
leak without the data key reveals nothing; people sharing a name and birth date share a key,
and staff then tell them apart by the address (decrypted for those few only)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from idp.card.models import CardAttributes, PersonLookup
from idp.card.profile import BasicAttributes
from idp.data_keys import DataKeys, keyed_hash

PURPOSE = "idp/person-lookup/v1"


def normalize(text: str) -> str:
    """Full-/half-width and spacing differences do not matter (as in same_person_as)."""
    return "".join(unicodedata.normalize("NFKC", text).split()).casefold()


def _message(name: str, birthdate: str) -> bytes:
    return f"{normalize(name)}\n{birthdate.strip()}".encode()


def lookup_key(data_key: str, name: str, birthdate: str) -> str:
    """Under the newest data key (an older key's index is redone by the rotation's pass)."""
    return keyed_hash(DataKeys(data_key).derive(PURPOSE), _message(name, birthdate))


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
    message = _message(name, birthdate)
    keys = [keyed_hash(k, message) for k in DataKeys(data_key).derive_all(PURPOSE)]
    # Every key of the secret: during a rotation, people not yet re-indexed are found too.
    query = select(PersonLookup.person_id).where(PersonLookup.lookup_key.in_(keys))
    return list(s.scalars(query))


OpenAttributes = Callable[[str, bytes], BasicAttributes]


def reindex(s: Session, data_key: str, open_attributes: OpenAttributes) -> int:
    """Index every person with stored attributes (people enrolled before the index existed);
    `open_attributes(person_id, sealed)` decrypts. Returns how many were indexed."""
    count = 0
    for row in s.scalars(select(CardAttributes)):
        index_person(s, data_key, row.person_id, open_attributes(row.person_id, row.sealed))
        count += 1
    return count
