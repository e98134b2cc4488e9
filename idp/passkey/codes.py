"""One-time passkey enrollment codes.

Counter staff check the person in person (My Number card or another photo ID), then find them
among the people already enrolled with their card, by the name and birth date on the card
(idp/card/lookup.py; the address too when several share both). A person who never signed in
with the card cannot get a code: a passkey is always tied to a card-verified person, and no
card or certificate number is ever typed or stored.

A code is 10 characters from a 32-letter alphabet (50 bits) shown once as `ABCDE-FGHJK`, valid
15 minutes, single use, stored only as HMAC-SHA256 under a key derived from PHR_IDP_DATA_KEY
(so even a copy of the database cannot be searched for codes). Issuing a new code for a person
withdraws their earlier unused ones."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from idp.card import lookup
from idp.card.models import CardAttributes
from idp.data_keys import DataKeys, keyed_hash
from idp.orm import rowcount
from idp.passkey.audit import audit
from idp.passkey.errors import PasskeyError
from idp.passkey.models import EnrollmentCode
from idp.tokens import aware, now_utc

CODE_PURPOSE = "idp/enrollment-code/v1"
CODE_TTL = timedelta(minutes=15)
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
LENGTH = 10
BIRTHDATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def normalize_code(text: str) -> str | None:
    code = re.sub(r"[\s-]", "", text or "").upper()
    if len(code) == LENGTH and all(c in ALPHABET for c in code):
        return code
    return None


def display(code: str) -> str:
    return f"{code[:5]}-{code[5:]}"


def code_key(data_key: str, code: str) -> str:
    """Under the newest data key; `check` also tries the older ones (codes live 15 minutes,
    less than a data-key rotation's overlap)."""
    return keyed_hash(DataKeys(data_key).derive(CODE_PURPOSE), code.encode())


@dataclass(frozen=True)
class IssuedCode:
    id: str
    code: str  # shown once, never stored
    expires_at: datetime


def find_person(
    s: Session,
    data_key: str,
    open_attributes: lookup.OpenAttributes,
    name: str,
    birthdate: str,
    address: str = "",
) -> str:
    """The one enrolled person with this name and birth date (and address, when given or
    needed); PasskeyError person_not_found / person_ambiguous otherwise. `open_attributes`
    decrypts a CardAttributes row (CardServices.open_attributes)."""
    found = lookup.candidates(s, data_key, name, birthdate)
    if address.strip():
        wanted = lookup.normalize(address)
        matching = []
        for person_id in found:
            row = s.get(CardAttributes, person_id)
            if row is None:
                continue
            if lookup.normalize(open_attributes(person_id, row.sealed).address) == wanted:
                matching.append(person_id)
        found = matching
    if not found:
        raise PasskeyError("person_not_found")
    if len(found) > 1:
        raise PasskeyError("person_ambiguous")
    return found[0]


def issue(s: Session, data_key: str, staff_id: int, person_id: str) -> IssuedCode:
    """A new code for `person_id`, withdrawing the person's earlier unused codes; audited."""
    now = now_utc()
    s.execute(
        update(EnrollmentCode)
        .where(EnrollmentCode.person_id == person_id, EnrollmentCode.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    code = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    row = EnrollmentCode(
        id=secrets.token_hex(8),
        code_key=code_key(data_key, code),
        person_id=person_id,
        staff_id=staff_id,
        created_at=now,
        expires_at=now + CODE_TTL,
    )
    s.add(row)
    s.flush()
    audit(s, "code_issued", "success", staff_id=staff_id, person_id=person_id, ref=row.id)
    return IssuedCode(row.id, code, row.expires_at)


def check(s: Session, data_key: str, typed: str) -> EnrollmentCode:
    """The live enrollment code the person typed; PasskeyError code_wrong / code_expired /
    code_used otherwise (the caller audits and counts the attempt)."""
    code = normalize_code(typed)
    if code is None:
        raise PasskeyError("code_wrong")
    row = s.scalar(
        select(EnrollmentCode).where(
            EnrollmentCode.code_key.in_(
                [keyed_hash(k, code.encode()) for k in DataKeys(data_key).derive_all(CODE_PURPOSE)]
            )
        )
    )
    if row is None:
        raise PasskeyError("code_wrong")
    if row.used_at is not None:
        raise PasskeyError("code_used")
    if aware(row.expires_at) <= now_utc():
        raise PasskeyError("code_expired")
    return row


def consume(s: Session, code_id: str) -> None:
    """Mark the code used, once: a second caller (a concurrent registration) gets code_used."""
    now = now_utc()
    done = s.execute(
        update(EnrollmentCode)
        .where(
            EnrollmentCode.id == code_id,
            EnrollmentCode.used_at.is_(None),
            EnrollmentCode.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(done) != 1:
        row = s.get(EnrollmentCode, code_id)
        if row is not None and row.used_at is None:
            raise PasskeyError("code_expired")
        raise PasskeyError("code_used")
